// Package chat is the chat role: the REST endpoints under /api and the /ws
// WebSocket of api.md, the hub of this node's connections, delivery through
// the broker, presence, receipts and typing.
//
// A message goes: send (REST or WS) → store.AppendMessage (a WebSocket send
// through AppendMessageAsync, several per connection in flight when the
// store queues without waiting: pipeline.go) → the `message` frame is
// encoded once and published in a small envelope on the recipient's and the
// sender's user topics → every node holding a connection of either user
// hands the same bytes to each local connection's bounded queue → one
// writer goroutine per connection writes them.
//
// Files: service.go (lifecycle, authentication), rest.go and ws.go (the two
// transports), pipeline.go (the WebSocket send path), delivery.go (send
// validation, fan-out, receipts, presence events), hub.go with registry.go
// (local connections) and topics.go (per-user subscription and presence),
// cache.go, timedstore.go (store latency), wire.go (frames and envelopes).
package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Deps are the chat role's collaborators.
type Deps struct {
	Store    Store
	Broker   pubsub.Broker
	Presence pubsub.Presence
	Verifier *token.Verifier
	NodeID   string
	Logger   *slog.Logger
	Metrics  prometheus.Registerer // nil: metrics are kept but not exported
	// Notifier sends Web Push notifications (push.go); nil: push is off.
	Notifier Notifier
	Tracer   trace.TracerProvider // nil: tracing is off (tracing.go)
}

// Service is the chat role of one node.
type Service struct {
	cfg      Config
	store    *timedStore
	broker   pubsub.Broker
	presence pubsub.Presence
	verifier *token.Verifier
	node     string
	log      *slog.Logger
	m        *metrics
	notifier Notifier     // nil: no Web Push
	tracer   trace.Tracer // nil when tracing is off
	// appendRefusesBlocked: the store's appends refuse a sender the
	// recipient blocks (store.BlockCheckingAppender), so validateSend
	// need not ask IsBlocked.
	appendRefusesBlocked bool

	hub      *hub
	sessions *sessionCache

	sendLimit *httpapi.Limiter // per user, every kind of send
	pushLimit *httpapi.Limiter // per user, subscription and mute changes (push.go)
	sockets   *socketCounts    // WebSockets per user and per address
	trusted   []netip.Prefix   // http.trusted_proxies
	logLimit  *httpapi.Limiter // security log lines per limit
	users     *userCache
	pairs     contactPairs // contacts.go
	att       *attachmentState

	// WebSocket sends are answered by a few completion goroutines
	// (pipeline.go), running from Start to the end of Shutdown.
	completions []*completionQueue // one per completion goroutine
	completers  sync.WaitGroup

	epoch time.Time // origin of mono

	lastPublishWarn atomic.Int64 // unix ns of the last "publish failed" WARN
	owed            *owedResyncs // users owed a resync through the broker (owedresync.go)
	appendErrLog    logEvery     // failed appends: one line per appendErrorLogEvery

	// ctx lives from New to the end of Shutdown; background work derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closing  bool
	inflight sync.WaitGroup // sends between "accepted" and "ack enqueued / response written"
	conns    sync.WaitGroup // WebSocket handlers
	started  bool           // Start ran: the completion goroutines run
	revSub   pubsub.Subscription
	loopDone chan struct{}
}

// opTimeout bounds background backend calls.
const opTimeout = 10 * time.Second

// New checks cfg and d and returns a Service; Start must be called before
// serving WebSockets.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case d.Store == nil:
		return nil, errors.New("chat: a store is required")
	case d.Broker == nil:
		return nil, errors.New("chat: a broker is required")
	case d.Presence == nil:
		return nil, errors.New("chat: a presence registry is required")
	case d.Verifier == nil:
		return nil, errors.New("chat: a token verifier is required")
	case d.NodeID == "":
		return nil, errors.New("chat: a node id is required")
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, fmt.Errorf("chat: register metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, store: newTimedStore(withBreaker(d.Store, newBreaker(cfg, d.Store.Ping, log, ctx.Done())), m.storeLat), broker: d.Broker, presence: d.Presence, verifier: d.Verifier,
		node: d.NodeID, log: log, m: m, notifier: d.Notifier,
		sessions: newSessionCache(), users: newUserCache(), completions: newCompletionQueues(),
		owed:  newOwedResyncs(),
		epoch: time.Now(), ctx: ctx, cancel: cancel, loopDone: make(chan struct{}),
	}
	s.appendErrLog.every = appendErrorLogEvery
	if b, ok := d.Store.(store.BlockCheckingAppender); ok {
		s.appendRefusesBlocked = b.AppendRefusesBlocked()
	}
	if d.Tracer != nil {
		s.tracer = d.Tracer.Tracer(tracerName)
	}
	s.hub = newHub(s)
	s.sendLimit = httpapi.NewLimiter(cfg.SendRate, cfg.SendBurst, maxLimiterKeys)
	s.pushLimit = httpapi.NewLimiter(pushRate, pushBurst, maxLimiterKeys)
	s.sockets = newSocketCounts(cfg.MaxSocketsPerUser, cfg.MaxSocketsPerAddr)
	s.logLimit = httpapi.NewLimiter(2, 10, 64)
	s.att = newAttachmentState(cfg)
	s.trusted, _ = httpapi.ParseProxies(cfg.TrustedProxies) // Validate checked it
	return s, nil
}

// Routes registers every /api endpoint and /ws on mux.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/users", s.api(s.handleSearchUsers))
	mux.HandleFunc("GET /api/users/{id}", s.api(s.handleUser))
	mux.HandleFunc("GET /api/conversations", s.api(s.handleConversations))
	mux.HandleFunc("GET /api/conversations/{peer_id}/messages", s.api(s.handleHistory))
	mux.HandleFunc("POST /api/messages", s.api(s.handleSend))
	mux.HandleFunc("POST /api/conversations/{peer_id}/read", s.api(s.handleRead))
	mux.HandleFunc("PATCH /api/conversations/{peer_id}/messages/{seq}", s.api(s.handleEdit))
	mux.HandleFunc("DELETE /api/conversations/{peer_id}/messages/{seq}", s.api(s.handleDelete))
	mux.HandleFunc("PUT /api/conversations/{peer_id}/messages/{seq}/reaction", s.api(s.handleReact))
	mux.HandleFunc("PUT /api/users/{id}/block", s.api(s.handleBlock))
	mux.HandleFunc("DELETE /api/users/{id}/block", s.api(s.handleUnblock))
	mux.HandleFunc("GET /api/blocks", s.api(s.handleBlocks))
	mux.HandleFunc("PATCH /api/me", s.api(s.handlePatchMe))
	mux.HandleFunc("GET /api/me/export", s.api(s.handleExport))
	mux.HandleFunc("POST /api/attachments", s.api(s.handleUpload))
	mux.HandleFunc("GET /api/attachments/{id}", s.api(s.handleDownload))
	mux.HandleFunc("GET /api/push/key", s.api(s.handlePushKey))
	mux.HandleFunc("POST /api/push/subscriptions", s.api(s.handleSubscribe))
	mux.HandleFunc("DELETE /api/push/subscriptions", s.api(s.handleUnsubscribe))
	mux.HandleFunc("PUT /api/conversations/{peer_id}/mute", s.api(s.handleMute))
	mux.HandleFunc("GET /ws", s.handleWS)
}

// Start subscribes this node to session revocations and starts the
// periodic work (pings, idle and expiry checks, presence refresh).
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("chat: already started")
	}
	s.started = true
	s.completers.Add(len(s.completions))
	for _, q := range s.completions {
		go s.completer(q)
	}
	s.mu.Unlock()
	sub, err := s.broker.Subscribe(ctx, pubsub.TopicRevocations, s.onRevocation)
	if err != nil {
		return fmt.Errorf("chat: subscribe revocations: %w", err)
	}
	s.mu.Lock()
	s.revSub = sub
	s.mu.Unlock()
	s.presence.OnExpired(s.UserWentOffline)
	s.broker.OnReconnect(s.onBrokerReconnect)
	go s.loop()
	return nil
}

// Shutdown refuses new work, lets in-flight sends finish (stored and
// acknowledged), closes every WebSocket with 1001 after its queued frames,
// and announces this node's users offline. It returns when every connection
// is closed or ctx ends.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	started := s.started
	s.mu.Unlock()

	if err := waitCtx(ctx, &s.inflight); err != nil {
		return fmt.Errorf("chat: shutdown: in-flight sends: %w", err)
	}
	s.hub.conns.closeAll(1001, "server shutting down")
	if err := waitCtx(ctx, &s.conns); err != nil {
		return fmt.Errorf("chat: shutdown: connections: %w", err)
	}
	s.hub.topics.flushOffline(ctx)
	s.mu.Lock()
	if s.revSub != nil {
		s.revSub.Unsubscribe()
		s.revSub = nil
	}
	s.mu.Unlock()
	s.cancel() // stops the loop and the completion goroutines (no connection is left to use them)
	if started {
		select {
		case <-s.loopDone:
		case <-ctx.Done():
			return fmt.Errorf("chat: shutdown: %w", ctx.Err())
		}
		if err := waitCtx(ctx, &s.completers); err != nil {
			return fmt.Errorf("chat: shutdown: completions: %w", err)
		}
	}
	return nil
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready reports whether the store and the broker answer.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("chat: store: %w", err)
	}
	if err := s.broker.Ping(ctx); err != nil {
		return fmt.Errorf("chat: broker: %w", err)
	}
	return nil
}

// UserWentOffline publishes userID's offline presence (with lastSeen) to
// its peers. Start registers it with Presence.OnExpired, for the users of a
// dead replica.
func (s *Service) UserWentOffline(userID string, lastSeen time.Time) {
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	defer cancel()
	s.publishPresence(ctx, userID, pubsub.Status{Online: false, LastSeen: lastSeen})
}

// mono returns t as monotonic nanoseconds since the service started.
func (s *Service) mono(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// beginWork admits one send unless the service is shutting down.
func (s *Service) beginWork() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Service) endWork() { s.inflight.Done() }

// beginConn admits one WebSocket handler once Start ran, unless the
// service is shutting down.
func (s *Service) beginConn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || !s.started {
		return false
	}
	s.conns.Add(1)
	return true
}

func (s *Service) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// loop is the node's periodic work, on three goroutines so a slow one never
// holds up another: a sweep of the connections every second (with cache
// pruning every pruneInterval), the presence refresh every PresenceTTL/3,
// and the session recheck every RevocationRecheck (a round of store reads
// that may be slow; it must not delay the refresh, or a healthy node's
// entries would expire).
func (s *Service) loop() {
	defer close(s.loopDone)
	var wg sync.WaitGroup
	wg.Go(s.sweepLoop)
	wg.Go(s.owedResyncLoop)
	wg.Go(func() { s.every(s.cfg.PresenceTTL/3, s.refreshPresence) })
	wg.Go(func() { s.every(s.cfg.RevocationRecheck, s.recheckSessions) })
	wg.Go(func() { s.every(s.cfg.AttachmentPruneInterval, s.pruneAttachments) })
	wg.Wait()
}

// every calls fn every interval until the service's context ends.
func (s *Service) every(interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// pruneInterval is how often the session cache and typing times are pruned.
const pruneInterval = 5 * time.Second

func (s *Service) sweepLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.hub.conns.sweep(now, s.mono(now), s.cfg.Heartbeat)
			if now.Sub(lastPrune) >= pruneInterval {
				lastPrune = now
				s.sessions.prune(now)
				s.hub.typing.prune(now)
			}
		}
	}
}

// refreshPresence renews this node's presence entries, within the TTL.
func (s *Service) refreshPresence() {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.PresenceTTL)
	defer cancel()
	if err := s.hub.topics.refresh(ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("presence refresh failed", "err", err)
	}
}

// recheckSessions asks the store about every session with a socket on this
// node and closes the revoked ones. Revocation events are the fast path; a
// broker can lose one (Redis down during a logout), and this bounds how
// long such a socket stays open.
func (s *Service) recheckSessions() {
	for _, sid := range s.hub.conns.sessions() {
		ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
		sess, err := s.store.SessionByID(ctx, sid)
		cancel()
		switch {
		case s.ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrNotFound) || (err == nil && sess.Revoked()):
			s.onRevocation([]byte(sid))
		case err != nil:
			s.log.Warn("session recheck failed", "err", err)
			return // the store is down; try again next round
		}
	}
}

// onRevocation handles a session id published on TopicRevocations.
func (s *Service) onRevocation(payload []byte) {
	sid := string(payload)
	if sid == "" {
		return
	}
	s.sessions.markRevoked(sid)
	s.hub.conns.closeSession(sid, 4001, "session revoked")
}

// principal is the authenticated caller of a request.
type principal struct {
	token.Claims
}

// authenticate verifies the request's token and its session. viaCookie
// reports whether the token came from the session cookie.
func (s *Service) authenticate(r *http.Request) (principal, bool, *httpapi.Error) {
	cl, viaCookie, err := s.verifier.FromRequest(r)
	if errors.Is(err, token.ErrKeysUnavailable) {
		return principal{}, false, httpapi.Fail(s.log, "verify token", err) // 503: auth's keys could not be fetched
	}
	if err != nil {
		return principal{}, false, httpapi.ErrUnauthenticated
	}
	if herr := s.checkSession(r.Context(), cl); herr != nil {
		return principal{}, false, herr
	}
	return principal{cl}, viaCookie, nil
}

// checkSession refuses a revoked, unknown or foreign session.
func (s *Service) checkSession(ctx context.Context, cl token.Claims) *httpapi.Error {
	now := time.Now()
	if e, ok := s.sessions.get(cl.SessionID, now); ok {
		if e.revoked || e.userID != cl.UserID {
			return httpapi.ErrUnauthenticated
		}
		return nil
	}
	sess, err := s.store.SessionByID(ctx, cl.SessionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return httpapi.ErrUnauthenticated
	case err != nil:
		return httpapi.Fail(s.log, "session lookup", err)
	}
	s.sessions.put(sess.ID, sess.UserID, sess.Revoked(), now)
	if sess.Revoked() || sess.UserID != cl.UserID {
		return httpapi.ErrUnauthenticated
	}
	return nil
}
