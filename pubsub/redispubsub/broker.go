// Package redispubsub is the Redis backend of pubsub: a Broker over Redis
// Pub/Sub and a cluster-wide Presence registry in Redis hashes, for chatd
// replicas. It needs a standalone Redis (or one primary): the presence
// scripts touch several keys at once.
//
// Each Broker keeps ONE Pub/Sub connection for all its subscriptions. A
// topic is the Redis channel ChannelPrefix+topic; the node SUBSCRIBEs on
// the first local subscription of a channel and UNSUBSCRIBEs after the
// last. One goroutine reads that connection and calls the handlers. After a
// connection loss (Redis restarted) it reconnects and resubscribes every
// channel by itself; payloads published meanwhile are lost (the broker is
// best effort, see package pubsub).
package redispubsub

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by the Broker's methods after Close.
var ErrClosed = errors.New("redispubsub: broker closed")

var (
	_ pubsub.Broker   = (*Broker)(nil)
	_ pubsub.Presence = (*Broker)(nil)
)

// Options configure a Broker.
type Options struct {
	// URL of the Redis server: redis://[user:password@]host:port/db
	// (rediss:// for TLS). A password alone (redis://:password@) is Redis
	// AUTH; a user and password an ACL user. Errors never repeat the URL.
	URL string
	// CAFile is a PEM file of the certificate authorities that a rediss://
	// server's certificate must chain to (default: the system's).
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for a
	// server that asks for one (tls-auth-clients).
	CertFile, KeyFile string
	// ChannelPrefix prefixes every channel and key this package uses.
	// Default "chatd:".
	ChannelPrefix string
	// PresenceTTL is how long a node's presence entries live without a
	// Refresh; a dead node's users go offline within it. Default 15s.
	PresenceTTL time.Duration
	// NodeID names this node (for logs and the sweeper lock); a random one
	// if empty. Presence methods take the node id as an argument.
	NodeID string
	// Logger receives connection problems of the background goroutines.
	// Default: discard.
	Logger *slog.Logger
}

// Broker is a pubsub.Broker and pubsub.Presence backed by Redis.
type Broker struct {
	opt    Options
	log    *slog.Logger
	client *redis.Client
	ps     *redis.PubSub
	// pinger answers Ping on a connection of its own, so that readiness
	// does not queue for one of client's behind a storm of presence writes
	// and publishes (TestPingWithPoolBusy).
	pinger *redis.Client

	// subMu serializes SUBSCRIBE/UNSUBSCRIBE decisions and their writes;
	// the delivery path never takes it.
	subMu sync.Mutex
	// mu guards channels and closed. channelSubs.subs slices are
	// copy-on-write, so dispatch reads them after releasing mu.
	mu       sync.RWMutex
	channels map[string]*channelSubs
	closed   bool
	// closedFlag mirrors closed for the lock-free check in Publish.
	closedFlag atomic.Bool

	pongMu   sync.Mutex
	pongs    map[string]chan struct{}
	pongSeq  atomic.Uint64
	lastRecv atomic.Int64 // unix nanoseconds of the last item read from the Pub/Sub connection
	recvDown atomic.Bool  // the last read from the Pub/Sub connection failed

	expiredMu sync.RWMutex
	onExpired []func(userID string, lastSeen time.Time)

	reconnMu    sync.Mutex
	onReconnect []func()

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type channelSubs struct {
	subs []*subscription
}

// healthInterval: when the Pub/Sub connection was silent this long, the
// node PINGs on it, so a broken connection is noticed and replaced.
const healthInterval = 5 * time.Second

// New connects to Redis (failing if it does not answer within ctx) and
// starts the receive, health-check and presence-sweeper goroutines.
func New(ctx context.Context, opt Options) (*Broker, error) {
	if opt.ChannelPrefix == "" {
		opt.ChannelPrefix = "chatd:"
	}
	if opt.PresenceTTL <= 0 {
		opt.PresenceTTL = 15 * time.Second
	}
	if opt.NodeID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opt.NodeID = hex.EncodeToString(b[:])
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ro, err := ClientOptions(opt)
	if err != nil {
		return nil, err
	}
	// go-redis prints reconnect attempts to stderr through a process-wide
	// logger; send them to the structured log instead (the first broker's
	// logger serves the process: setting it again would race with readers).
	setRedisLogger.Do(func() { redis.SetLogger(redisLogger{log}) })
	po := *ro
	po.PoolSize, po.MinIdleConns, po.MaxIdleConns = 1, 0, 1
	client := redis.NewClient(ro)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		if isAuthError(err) {
			return nil, fmt.Errorf("redispubsub: %s refused the credentials of the URL (its user and password): %w", ro.Addr, err)
		}
		return nil, fmt.Errorf("redispubsub: ping %s: %w", ro.Addr, err)
	}
	b := &Broker{
		opt:      opt,
		log:      log,
		client:   client,
		pinger:   redis.NewClient(&po),  // connects on first use
		ps:       client.Subscribe(ctx), // no channel yet: connects on first use
		channels: make(map[string]*channelSubs),
		pongs:    make(map[string]chan struct{}),
		stop:     make(chan struct{}),
	}
	b.lastRecv.Store(time.Now().UnixNano())
	b.wg.Add(3)
	go b.receiveLoop()
	go b.healthLoop()
	go b.sweepLoop()
	return b, nil
}

// ClientOptions turns opt's URL and TLS files into go-redis options. Its
// errors name the problem, never the URL (which may hold a password).
func ClientOptions(opt Options) (*redis.Options, error) {
	ro, err := redis.ParseURL(opt.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, password included
		}
		return nil, fmt.Errorf("redispubsub: the Redis URL is not redis://[user:password@]host:port/db or rediss://...: %v", err)
	}
	if opt.CAFile == "" && opt.CertFile == "" && opt.KeyFile == "" {
		return ro, nil
	}
	if ro.TLSConfig == nil {
		return nil, errors.New("redispubsub: a CA file or client certificate needs a rediss:// URL (TLS)")
	}
	if opt.CAFile != "" {
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redispubsub: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redispubsub: CA file %s holds no PEM certificate", opt.CAFile)
		}
		ro.TLSConfig.RootCAs = pool
	}
	if opt.CertFile != "" || opt.KeyFile != "" {
		if opt.CertFile == "" || opt.KeyFile == "" {
			return nil, errors.New("redispubsub: a client certificate needs both its certificate and its key file")
		}
		cert, err := tls.LoadX509KeyPair(opt.CertFile, opt.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redispubsub: client certificate: %w", err)
		}
		ro.TLSConfig.Certificates = []tls.Certificate{cert}
	}
	return ro, nil
}

// isAuthError reports Redis refusing a connection's credentials, or asking
// for some: WRONGPASS (bad user or password), NOAUTH (none given) and
// NOPERM (the ACL user may not run a command chatd needs).
func isAuthError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR AUTH", "ERR invalid password"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

type subscription struct {
	*pubsub.GuardedHandler
	b       *Broker
	channel string
}

// Unsubscribe implements pubsub.Subscription. It waits for a running call
// of the handler, so it must not be called from inside that handler. The
// node UNSUBSCRIBEs from the channel when this was its last subscription.
func (s *subscription) Unsubscribe() {
	if s.Stop() {
		s.b.release(s)
	}
}

func (b *Broker) release(s *subscription) {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	cs := b.channels[s.channel]
	last := false
	if cs != nil {
		for i, x := range cs.subs {
			if x != s {
				continue
			}
			if len(cs.subs) == 1 {
				delete(b.channels, s.channel)
				last = true
			} else {
				n := make([]*subscription, 0, len(cs.subs)-1)
				n = append(n, cs.subs[:i]...)
				cs.subs = append(n, cs.subs[i+1:]...)
			}
			break
		}
	}
	closed := b.closed
	b.mu.Unlock()
	if last && !closed {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// An error means the connection broke; the channel is already out
		// of the set go-redis resubscribes on reconnect.
		if err := b.ps.Unsubscribe(ctx, s.channel); err != nil {
			b.log.Debug("redispubsub: unsubscribe", "channel", s.channel, "err", err)
		}
	}
}

// Publish implements pubsub.Broker: one PUBLISH on the client pool.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte) error {
	if b.isClosed() {
		return ErrClosed
	}
	if err := b.client.Publish(ctx, b.opt.ChannelPrefix+topic, payload).Err(); err != nil {
		return fmt.Errorf("redispubsub: publish: %w", err)
	}
	return nil
}

// PublishBatch implements pubsub.BatchPublisher: the PUBLISH commands go in
// one pipeline, so a completion batch of sends costs one round trip.
func (b *Broker) PublishBatch(ctx context.Context, ps []pubsub.Publication) []error {
	if len(ps) == 0 {
		return nil
	}
	if b.isClosed() {
		errs := make([]error, len(ps))
		for i := range errs {
			errs[i] = ErrClosed
		}
		return errs
	}
	cmds, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, x := range ps {
			p.Publish(ctx, b.opt.ChannelPrefix+x.Topic, x.Payload)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	errs := make([]error, len(ps))
	for i := range errs {
		e := err // the pipeline failed before it returned commands
		if i < len(cmds) {
			e = cmds[i].Err()
		}
		if e != nil {
			errs[i] = fmt.Errorf("redispubsub: publish: %w", e)
		}
	}
	return errs
}

// Subscribe implements pubsub.Broker. It returns once Redis has processed
// the channel's SUBSCRIBE on this node's Pub/Sub connection (a PING sent
// after it was answered), or fails when ctx ends first.
func (b *Broker) Subscribe(ctx context.Context, topic string, h pubsub.Handler) (pubsub.Subscription, error) {
	if h == nil {
		return nil, errors.New("redispubsub: subscribe: nil handler")
	}
	s := &subscription{GuardedHandler: pubsub.NewGuardedHandler(h), b: b, channel: b.opt.ChannelPrefix + topic}
	b.subMu.Lock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.subMu.Unlock()
		return nil, ErrClosed
	}
	cs := b.channels[s.channel]
	first := cs == nil
	if first {
		cs = &channelSubs{}
		b.channels[s.channel] = cs
	}
	n := make([]*subscription, len(cs.subs), len(cs.subs)+1)
	copy(n, cs.subs)
	cs.subs = append(n, s)
	b.mu.Unlock()
	if first {
		// go-redis adds the channel to its resubscribe set even when the
		// write fails; waitActive below decides whether it took effect.
		_ = b.ps.Subscribe(ctx, s.channel)
	}
	b.subMu.Unlock()

	if err := b.waitActive(ctx); err != nil {
		s.Unsubscribe()
		return nil, fmt.Errorf("redispubsub: subscribe %q: %w", topic, err)
	}
	return s, nil
}

// pongRetry: a PING whose answer did not come within it is sent again
// (its connection may have been replaced meanwhile).
const pongRetry = time.Second

// waitActive sends a PING with a unique payload on the Pub/Sub connection
// and waits for its answer. Redis answers in order, so the answer proves
// every SUBSCRIBE written before it (or replayed by a reconnect, which
// happens before any later write) is in effect.
func (b *Broker) waitActive(ctx context.Context) error {
	done := make(chan struct{}, 1)
	var tokens []string
	defer func() {
		b.pongMu.Lock()
		for _, tok := range tokens {
			delete(b.pongs, tok)
		}
		b.pongMu.Unlock()
	}()
	timer := time.NewTimer(pongRetry)
	defer timer.Stop()
	for {
		tok := "chatd-sub-" + strconv.FormatUint(b.pongSeq.Add(1), 10)
		b.pongMu.Lock()
		b.pongs[tok] = done
		b.pongMu.Unlock()
		tokens = append(tokens, tok)
		_ = b.ps.Ping(ctx, tok) // on error, retry after pongRetry
		timer.Reset(pongRetry)
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-b.stop:
			return ErrClosed
		case <-timer.C:
		}
	}
}

func (b *Broker) receiveLoop() {
	defer b.wg.Done()
	ctx := context.Background()
	failures := 0
	for {
		msg, err := b.ps.Receive(ctx)
		if err != nil {
			select {
			case <-b.stop:
				return
			default:
			}
			if failures == 0 {
				b.log.Warn("redispubsub: pubsub connection lost; reconnecting", "err", err)
			}
			b.recvDown.Store(true)
			failures++
			// Back off from 50ms to 1s; each Receive redials.
			wait := min(50*time.Millisecond<<min(failures-1, 5), time.Second)
			select {
			case <-b.stop:
				return
			case <-time.After(wait):
			}
			continue
		}
		if failures > 0 {
			b.log.Info("redispubsub: pubsub connection restored")
			failures = 0
			b.wg.Add(1)
			go b.announceReconnect()
		}
		b.recvDown.Store(false)
		b.lastRecv.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			b.dispatch(m.Channel, m.Payload)
		case *redis.Pong:
			b.pongMu.Lock()
			done := b.pongs[m.Payload]
			b.pongMu.Unlock()
			if done != nil {
				select {
				case done <- struct{}{}:
				default:
				}
			}
		case *redis.Subscription:
			// Confirmations, also after a reconnect; readiness uses PING.
		}
	}
}

func (b *Broker) dispatch(channel, payload string) {
	b.mu.RLock()
	cs := b.channels[channel]
	var subs []*subscription
	if cs != nil {
		subs = cs.subs
	}
	b.mu.RUnlock()
	if len(subs) == 0 {
		return
	}
	p := []byte(payload) // one copy shared read-only by every handler
	for _, s := range subs {
		s.Deliver(p)
	}
}

// OnReconnect implements pubsub.Broker: fn runs after the Pub/Sub
// connection was lost and replaced, once a PING sent after the
// resubscription was answered (every channel is subscribed again).
func (b *Broker) OnReconnect(fn func()) {
	b.reconnMu.Lock()
	b.onReconnect = append(b.onReconnect, fn)
	b.reconnMu.Unlock()
}

// announceReconnect waits until the resubscribed connection answers, then
// calls the OnReconnect listeners. Should the link break again first, the
// next restoration announces it.
func (b *Broker) announceReconnect() {
	defer b.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.waitActive(ctx); err != nil {
		return
	}
	b.reconnMu.Lock()
	fns := slices.Clone(b.onReconnect)
	b.reconnMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// healthLoop PINGs on an idle Pub/Sub connection: a failing write makes
// go-redis replace the connection, and the answer marks it alive.
func (b *Broker) healthLoop() {
	defer b.wg.Done()
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, b.lastRecv.Load())) < healthInterval {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), healthInterval)
		if err := b.ps.Ping(ctx, "chatd-health"); err != nil {
			b.log.Debug("redispubsub: health ping", "err", err)
		}
		cancel()
	}
}

// Ping implements pubsub.Broker: Redis answers PING and this node's
// Pub/Sub connection is up.
func (b *Broker) Ping(ctx context.Context) error {
	if b.isClosed() {
		return ErrClosed
	}
	if err := b.pinger.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redispubsub: ping: %w", err)
	}
	if b.recvDown.Load() {
		return errors.New("redispubsub: pubsub connection down")
	}
	return nil
}

func (b *Broker) isClosed() bool { return b.closedFlag.Load() }

// Close ends every subscription (no handler runs after it returns), stops
// the background goroutines and closes the connections. It is idempotent.
// This node's presence entries stay in Redis and expire unless the caller
// Disconnects its users first.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.subMu.Lock()
		b.mu.Lock()
		b.closed = true
		b.closedFlag.Store(true)
		channels := b.channels
		b.channels = make(map[string]*channelSubs)
		b.mu.Unlock()
		b.subMu.Unlock()
		for _, cs := range channels {
			for _, s := range cs.subs {
				s.Stop()
			}
		}
		close(b.stop)
		_ = b.ps.Close()
		b.wg.Wait()
		_ = b.client.Close()
		_ = b.pinger.Close()
	})
	return nil
}

var setRedisLogger sync.Once

// redisLogger adapts slog to go-redis's printf-style logger.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
