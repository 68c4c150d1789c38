package chat

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// The store breaker. A store that fails or stops answering (MongoDB
// unreachable, a frozen server, a stuck disk) must not make every send wait
// its own timeout: sends of one socket would queue behind one another for
// opTimeout each, and the backlog would outlast the outage. After
// StoreBreakerFailures consecutive failed appends, or when appends in flight
// have made no progress for StoreStallTimeout, the breaker opens: appends
// are refused at once with 503 unavailable and Retry-After (the client
// retries with the same client_msg_id), and nothing new queues behind the
// stuck ones. While open, a probe pings the store every probe interval; the
// breaker closes when the ping answers and the appends in flight have
// drained or moved again, and sends run at full rate from then on.
//
// Only appends go through the breaker: reads fail on their own (each within
// opTimeout) and do not pile up behind one another.

// breaker is the state shared by the store wrappers below.
type breaker struct {
	threshold int           // consecutive failures that open it
	stall     time.Duration // no progress for this long with appends in flight opens it
	probe     time.Duration // pause between two probes while open
	ping      func(ctx context.Context) error
	log       *slog.Logger
	done      <-chan struct{} // the service's end: stops the probe

	mu          sync.Mutex
	open        bool
	consecutive int       // failures in a row
	inflight    int       // appends begun and not ended
	progress    time.Time // last answer from the store, or when inflight left 0
}

func newBreaker(cfg Config, ping func(ctx context.Context) error, log *slog.Logger, done <-chan struct{}) *breaker {
	return &breaker{
		threshold: cfg.StoreBreakerFailures,
		stall:     cfg.StoreStallTimeout,
		probe:     min(max(cfg.StoreStallTimeout/4, 50*time.Millisecond), time.Second),
		ping:      ping,
		log:       log,
		done:      done,
	}
}

// begin admits an append, or refuses it with httpapi.ErrUnavailable while
// the breaker is open (opening it first when the appends in flight stalled).
func (b *breaker) begin() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !b.open && b.stalledLocked(now) {
		b.openLocked("appends in flight made no progress", "stall", b.stall)
	}
	if b.open {
		return httpapi.ErrUnavailable
	}
	if b.inflight == 0 {
		b.progress = now
	}
	b.inflight++
	return nil
}

// end records the outcome of an admitted append.
func (b *breaker) end(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight--
	if errors.Is(err, context.Canceled) {
		return // the caller left: says nothing about the store
	}
	if !isStoreFailure(err) {
		b.progress = time.Now() // the store answered
		b.consecutive = 0
		return
	}
	b.consecutive++
	if !b.open && b.consecutive >= b.threshold {
		b.openLocked("appends failed", "consecutive", b.consecutive, "err", err)
	}
}

func (b *breaker) stalledLocked(now time.Time) bool {
	return b.inflight > 0 && now.Sub(b.progress) >= b.stall
}

// openLocked opens the breaker and starts its probe.
func (b *breaker) openLocked(why string, args ...any) {
	b.open = true
	b.log.Warn("store breaker open: refusing sends until the store answers", append([]any{"why", why}, args...)...)
	go b.probeLoop()
}

// probeLoop pings the store until it answers and the appends in flight
// are unstuck, then closes the breaker.
func (b *breaker) probeLoop() {
	t := time.NewTicker(b.probe)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(b.probe, 500*time.Millisecond))
		err := b.ping(ctx)
		cancel()
		if err != nil {
			continue
		}
		b.mu.Lock()
		if b.stalledLocked(time.Now()) {
			b.mu.Unlock()
			continue
		}
		b.open, b.consecutive = false, 0
		b.mu.Unlock()
		b.log.Info("store breaker closed: the store answers again")
		return
	}
}

// isStoreFailure reports whether an append's error says the store failed
// (or did not answer in time), as opposed to answering: a store sentinel
// (conflict, invalid, not found) is an answer, and a cancellation is the
// caller leaving.
func isStoreFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var k interface{ Kind() string }
	return !errors.As(err, &k)
}

// breakerStore is a Store whose AppendMessage goes through the breaker.
type breakerStore struct {
	Store
	b *breaker
}

func (s breakerStore) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	if err := s.b.begin(); err != nil {
		return store.Message{}, false, err
	}
	stored, created, err := s.Store.AppendMessage(ctx, m)
	s.b.end(err)
	return stored, created, err
}

// breakerAsyncStore is a breakerStore for a store.AsyncAppender.
type breakerAsyncStore struct {
	breakerStore
	async store.AsyncAppender
}

func (s breakerAsyncStore) AppendMessageAsync(ctx context.Context, m store.Message, done func(store.Message, bool, error)) {
	if err := s.b.begin(); err != nil {
		done(store.Message{}, false, err)
		return
	}
	s.async.AppendMessageAsync(ctx, m, func(stored store.Message, created bool, err error) {
		s.b.end(err)
		done(stored, created, err)
	})
}

// withBreaker wraps st's appends in b, keeping st's AsyncAppender if it has one.
func withBreaker(st Store, b *breaker) Store {
	bs := breakerStore{Store: st, b: b}
	if a, ok := st.(store.AsyncAppender); ok {
		return breakerAsyncStore{breakerStore: bs, async: a}
	}
	return bs
}
