package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
)

// limiterKeys bounds the failed-login limiter's memory.
const limiterKeys = 65536

// Deps are the Service's collaborators.
type Deps struct {
	Store Store // required: accounts and sessions
	// Broker carries revocations to the chat nodes (pubsub.TopicRevocations).
	// Without it, revoked sessions are refused by chat's store check only and
	// their open WebSockets are not closed.
	Broker pubsub.Broker
	// Signer issues access tokens; nil = token.NewSigner(Keys, cfg.Issuer,
	// cfg.Audience, cfg.AccessTTL).
	Signer *token.Signer
	// Keys is the signing key, served at /auth/jwks and used to verify the
	// service's own tokens. Required unless Signer is set (then its key).
	Keys    *token.SigningKey
	Logger  *slog.Logger          // nil = discard
	Metrics prometheus.Registerer // nil = metrics not registered
}

// Service serves the /auth endpoints: accounts, passwords and sessions.
type Service struct {
	cfg      Config
	store    Store
	broker   pubsub.Broker
	signer   *token.Signer
	keys     *token.SigningKey
	verifier *token.Verifier
	log      *slog.Logger
	guard    *loginGuard      // failed logins per account and address
	logins   *httpapi.Limiter // login attempts per address; nil = off
	signups  *httpapi.Limiter // signups per address; nil = off
	trusted  []netip.Prefix   // proxies whose X-Forwarded-For is believed
	macKey   []byte           // refresh-token MAC key (refreshMACKey)
	hashSem  chan struct{}    // bounds concurrent argon2 runs (CPU and memory)
	dummy    string           // hash verified for unknown users, so they cost the same
	jwks     []byte
	now      func() time.Time
	m        metrics
}

type metrics struct {
	signups     prometheus.Counter
	logins      *prometheus.CounterVec // result: success, invalid_credentials, rate_limited, error
	refreshes   *prometheus.CounterVec // result: success, invalid, reused, error
	revocations *prometheus.CounterVec // reason: logout, reuse
}

// New returns a Service. It validates cfg.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil {
		return nil, errors.New("auth: no store")
	}
	if d.Keys == nil && d.Signer != nil {
		d.Keys = d.Signer.Key()
	}
	if d.Keys == nil {
		return nil, errors.New("auth: no signing key")
	}
	if d.Signer == nil {
		d.Signer = token.NewSigner(d.Keys, cfg.Issuer, cfg.Audience, cfg.AccessTTL)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:      cfg,
		store:    d.Store,
		broker:   d.Broker,
		signer:   d.Signer,
		keys:     d.Keys,
		verifier: token.NewVerifier(token.StaticKeySet(d.Keys.Public(), d.Signer.Key().Public()), d.Signer.Issuer(), d.Signer.Audience()),
		log:      d.Logger,
		guard:    newLoginGuard(cfg, limiterKeys),
		hashSem:  make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		dummy:    HashPassword("dummy password, never matches", cfg.Argon2),
		jwks:     d.Keys.JWKS(),
		now:      time.Now,
	}
	s.trusted, _ = httpapi.ParseProxies(cfg.TrustedProxies) // Validate checked it
	if cfg.LoginRateLimit > 0 {
		s.logins = httpapi.NewLimiter(cfg.LoginRateLimit, cfg.LoginBurst, limiterKeys)
	}
	if cfg.SignupLimit > 0 {
		s.signups = httpapi.NewLimiterPer(cfg.SignupLimit, cfg.SignupWindow, limiterKeys)
	}
	s.macKey = refreshMACKey(d.Keys)
	if err := s.initMetrics(d.Metrics); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) initMetrics(reg prometheus.Registerer) error {
	s.m = metrics{
		signups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_auth_signups_total", Help: "Accounts created.",
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_auth_logins_total", Help: "Login and token requests by result.",
		}, []string{"result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_auth_refreshes_total", Help: "Refresh requests by result.",
		}, []string{"result"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_auth_revocations_total", Help: "Sessions revoked, by reason.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{s.m.signups, s.m.logins, s.m.refreshes, s.m.revocations} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("auth: register metrics: %w", err)
		}
	}
	return nil
}

// Verifier returns the verifier of the service's own access tokens.
func (s *Service) Verifier() *token.Verifier { return s.verifier }

// withHashSlot runs f (an argon2 computation) once fewer than cap(hashSem)
// others run, so that a burst of logins cannot exhaust memory.
func (s *Service) withHashSlot(ctx context.Context, f func()) error {
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashSem }()
	f()
	return nil
}

// clientKey is the per-address limits' key of r's client (api.md 1.1).
func (s *Service) clientKey(r *http.Request) string {
	return httpapi.AddrKey(httpapi.ClientAddr(r, s.trusted))
}

// security logs a security event (a refused or failed attempt) at Warn
// with the client address, under "security"=event. Callers never pass a
// secret (password, token): only ids, usernames and reasons.
func (s *Service) security(r *http.Request, event string, attrs ...any) {
	attrs = append([]any{"security", event, "client_addr", httpapi.ClientAddr(r, s.trusted).String()}, attrs...)
	s.log.Warn("auth: "+event, attrs...)
}

func (s *Service) internal(op string, err error) *httpapi.Error {
	s.log.Error("auth: "+op, "err", err)
	return httpapi.ErrInternal
}
