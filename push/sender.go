// Package push sends Web Push notifications (RFC 8030, payloads encrypted
// per RFC 8291, VAPID per RFC 8292, through github.com/SherClockHolmes/webpush-go)
// for the messages a chat node stores while their recipient has no open
// connection on any node.
//
// chat calls MessageStored for every message it stored; that only queues
// the message (a full queue drops it). A few workers then ask the cluster
// presence whether the recipient is connected anywhere and the store
// whether the conversation is muted, and push to each of the recipient's
// subscriptions: a 404 or 410 removes the subscription, a 429, a 5xx or no
// answer is tried again later (bounded), anything else is a failure.
// Pushes of one conversation share a Topic, so the push service keeps only
// the latest of those a device has not fetched yet.
package push

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
)

// Store is what the sender reads: the recipient's subscriptions and mute,
// the sessions that made them, and the removal of a subscription whose
// push service says it is gone or whose session ended.
type Store interface {
	SessionByID(ctx context.Context, id string) (store.Session, error)
	PushSubscriptions(ctx context.Context, userID string) ([]store.PushSubscription, error)
	RemovePushSubscription(ctx context.Context, endpoint string) error
	MutedUntil(ctx context.Context, userID, peerID string) (time.Time, error)
}

// Deps are the sender's collaborators.
type Deps struct {
	Store    Store
	Presence pubsub.Presence
	Key      *Key
	// Subject is the VAPID sub when Config.Subject is empty (app passes the
	// first https public origin).
	Subject string
	Logger  *slog.Logger
	Metrics prometheus.Registerer // nil: not exported
}

// MaxTextBytes is the most of a message's text a payload carries (with
// include_text); a longer text is cut at a character boundary and ends in
// "…". It keeps the payload within one 4 KiB record whatever the escaping.
const MaxTextBytes = 512

// Payload is the JSON the service worker decrypts.
type Payload struct {
	ConversationID string `json:"conversation_id"`
	From           string `json:"from"`
	Seq            int64  `json:"seq"`
	Text           string `json:"text,omitempty"`
}

// job is one queued piece of work: a stored message to fan out to its
// recipient's subscriptions, or one push to retry.
type job struct {
	msg     store.Message
	retry   *store.PushSubscription
	payload []byte
	topic   string
	attempt int
}

// Sender queues and sends pushes. Start it before MessageStored is called
// (until then and after Stop, messages are dropped).
type Sender struct {
	cfg      Config
	st       Store
	presence pubsub.Presence
	key      *Key
	subject  string
	log      *slog.Logger
	m        *metrics
	client   *http.Client

	queue chan job

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	running  atomic.Bool
	lastWarn atomic.Int64
}

// New checks cfg and d and returns a stopped Sender.
func New(cfg Config, d Deps) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case d.Store == nil:
		return nil, errors.New("push: a store is required")
	case d.Presence == nil:
		return nil, errors.New("push: a presence registry is required")
	case d.Key == nil:
		return nil, errors.New("push: a VAPID key is required")
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, fmt.Errorf("push: register metrics: %w", err)
	}
	subject := cfg.Subject
	if subject == "" {
		subject = d.Subject
	}
	if subject == "" {
		subject = "mailto:chatd@localhost"
		log.Info("push.subject is not set; some push services refuse a VAPID subject without a reachable contact", "subject", subject)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sender{
		cfg: cfg, st: d.Store, presence: d.Presence, key: d.Key, subject: subject, log: log, m: m,
		client: newClient(cfg.Timeout, cfg.AllowInsecureEndpoints),
		queue:  make(chan job, cfg.QueueSize), ctx: ctx, cancel: cancel,
	}, nil
}

// PublicKey is the VAPID public key, base64url (GET /api/push/key).
func (s *Sender) PublicKey() string { return s.key.PublicKey() }

// CheckEndpoint reports why endpoint may not be subscribed (CheckEndpoint
// with push.allow_insecure_endpoints).
func (s *Sender) CheckEndpoint(endpoint string) error {
	return CheckEndpoint(endpoint, s.cfg.AllowInsecureEndpoints)
}

// Start starts the workers.
func (s *Sender) Start(context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("push: already started")
	}
	for range s.cfg.Workers {
		s.wg.Go(s.work)
	}
	return nil
}

// Stop ends the workers (a push in flight is cut short) and waits for them
// until ctx ends. Queued pushes are dropped.
func (s *Sender) Stop(ctx context.Context) error {
	s.running.Store(false)
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("push: stop: %w", ctx.Err())
	}
}

// MessageStored queues m for its recipient's pushes; it never blocks.
// Only text messages are pushed: an edit, a deletion or a reaction is not
// news worth a buzz.
func (s *Sender) MessageStored(m store.Message) {
	if !m.IsText() {
		return
	}
	if k, ok := s.st.(knownSubscriptions); ok {
		if n, known := k.KnownPushSubscriptions(m.To); known && n == 0 {
			return // nothing to push to: no job, no worker wakeup
		}
	}
	s.enqueue(job{msg: m})
}

// knownSubscriptions is what a store that keeps users' subscriptions in
// memory (sqlitestore) may offer besides Store: how many userID has, when
// it knows without a read. MessageStored runs on chat's completion path for
// every message, so it asks only this, never the store itself.
type knownSubscriptions interface {
	KnownPushSubscriptions(userID string) (n int, known bool)
}

func (s *Sender) enqueue(j job) {
	if !s.running.Load() {
		return
	}
	select {
	case s.queue <- j:
	default:
		s.m.dropped.Inc()
	}
}

func (s *Sender) work() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.queue:
			if j.retry != nil {
				s.push(*j.retry, j.payload, j.topic, j.attempt)
			} else {
				s.fanOut(j.msg)
			}
		}
	}
}

// fanOut pushes m to each of its recipient's subscriptions, unless the
// recipient is connected somewhere or muted the conversation.
func (s *Sender) fanOut(m store.Message) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	// Subscriptions first: most recipients have none, and then one read
	// decides (no presence lookup, no mute read).
	subs, err := s.st.PushSubscriptions(ctx, m.To)
	if err != nil {
		s.failed(err, "subscription lookup failed; no push")
		return
	}
	if len(subs) == 0 {
		return
	}
	st, err := s.presence.Lookup(ctx, []string{m.To})
	if err != nil {
		s.failed(err, "presence lookup failed; no push")
		return
	}
	if st[m.To].Online {
		return // a connection got the message live
	}
	until, err := s.st.MutedUntil(ctx, m.To, m.From)
	if err != nil {
		s.failed(err, "mute lookup failed; no push")
		return
	}
	if until.After(time.Now()) {
		s.m.muted.Inc()
		return
	}
	p := Payload{ConversationID: m.ConversationID, From: m.From, Seq: m.Seq}
	if s.cfg.IncludeText {
		p.Text = clip(m.Text, MaxTextBytes)
	}
	payload, err := json.Marshal(p)
	if err != nil {
		s.failed(err, "encode payload")
		return
	}
	topic := Topic(m.ConversationID)
	for _, sub := range subs {
		if s.sessionEnded(ctx, sub) {
			continue
		}
		s.push(sub, payload, topic, 1)
	}
}

// sessionEnded reports whether sub's session is revoked, expired or gone,
// and then removes sub: a logged-out device gets no more pushes.
func (s *Sender) sessionEnded(ctx context.Context, sub store.PushSubscription) bool {
	if sub.SessionID == "" {
		return false
	}
	sess, err := s.st.SessionByID(ctx, sub.SessionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		s.failed(err, "session lookup failed; no push")
		return true
	case sess.UserID == sub.UserID && !sess.Revoked() && time.Now().Before(sess.ExpiresAt):
		return false
	}
	if err := s.st.RemovePushSubscription(ctx, sub.Endpoint); err != nil {
		s.failed(err, "remove the subscription of an ended session")
		return true
	}
	s.m.removed.Inc()
	return true
}

// Topic is the Topic header of a conversation's pushes (RFC 8030 §5.4: at
// most 32 characters of the base64url alphabet): its id hashed.
func Topic(conversationID string) string {
	h := sha256.Sum256([]byte(conversationID))
	return base64.RawURLEncoding.EncodeToString(h[:])[:32]
}

// clip cuts s to at most max bytes at a character boundary, marking a cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// push sends one encrypted push and handles the answer.
func (s *Sender) push(sub store.PushSubscription, payload []byte, topic string, attempt int) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	resp, err := webpush.SendNotificationWithContext(ctx, payload,
		&webpush.Subscription{Endpoint: sub.Endpoint, Keys: webpush.Keys{P256dh: sub.P256dh, Auth: sub.Auth}},
		&webpush.Options{
			HTTPClient: s.client,
			// webpush-go prefixes "mailto:" to any subject not starting with "https:".
			Subscriber:      strings.TrimPrefix(s.subject, "mailto:"),
			Topic:           topic,
			TTL:             int(s.cfg.TTL / time.Second),
			Urgency:         webpush.UrgencyHigh,
			VAPIDPublicKey:  s.key.public,
			VAPIDPrivateKey: s.key.privateB64,
		})
	if s.ctx.Err() != nil {
		return // stopping
	}
	if err != nil {
		s.retryOrFail(sub, payload, topic, attempt, 0, err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		s.m.sent.Inc()
	case code == http.StatusNotFound || code == http.StatusGone:
		rctx, rcancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
		defer rcancel()
		if err := s.st.RemovePushSubscription(rctx, sub.Endpoint); err != nil {
			s.failed(err, "remove expired subscription")
			return
		}
		s.m.removed.Inc()
	case code == http.StatusTooManyRequests || code >= 500:
		s.retryOrFail(sub, payload, topic, attempt, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("push service answered %d", code))
	default: // 400, 401, 403 (another VAPID key), 413: trying again changes nothing
		s.failed(fmt.Errorf("push service answered %d", code), "push refused")
	}
}

// maxRetryAfter caps a push service's Retry-After.
const maxRetryAfter = time.Minute

func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n > 0 {
		return min(time.Duration(n)*time.Second, maxRetryAfter)
	}
	return 0
}

// retryOrFail queues the push again after a backoff (wait, when the
// service said, else RetryBackoff doubling per attempt), or counts it
// failed after MaxAttempts.
func (s *Sender) retryOrFail(sub store.PushSubscription, payload []byte, topic string, attempt int, wait time.Duration, err error) {
	if attempt >= s.cfg.MaxAttempts {
		s.failed(err, "push failed; giving up")
		return
	}
	if wait == 0 {
		wait = s.cfg.RetryBackoff << (attempt - 1)
	}
	s.m.retried.Inc()
	j := job{retry: &sub, payload: payload, topic: topic, attempt: attempt + 1}
	time.AfterFunc(wait, func() { s.enqueue(j) })
}

// failed counts a push (or the decision to push) that failed, logging it
// at most every 5 s.
func (s *Sender) failed(err error, what string) {
	s.m.failed.Inc()
	now := time.Now().UnixNano()
	if last := s.lastWarn.Load(); now-last >= int64(5*time.Second) && s.lastWarn.CompareAndSwap(last, now) {
		s.log.Warn(what, "err", err)
	}
}
