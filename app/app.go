// Package app is chatd's composition root: it turns a Config into running
// modules (the role/module table below), owns the HTTP listener and the
// operational endpoints, and is the only package that imports concrete
// backends.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/internal/gcfloor"
	"github.com/chatd/chatd/internal/tlsconf"
	"github.com/chatd/chatd/internal/tracing"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/push"
	"github.com/chatd/chatd/store"
)

// App is one running chatd process.
type App struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry
	mux *http.ServeMux
	set []string // the modules this process runs, dependencies first
	// secrets are the passwords of the backend URLs, kept out of logs.
	secrets []string

	// tracing is the span exporter when tracing.otlp_endpoint is set;
	// tp is its provider for the modules, nil when tracing is off.
	tracing *tracing.Provider
	tp      trace.TracerProvider

	// What the modules built, for the modules that depend on them.
	store      store.Store
	broker     pubsub.Broker
	presence   pubsub.Presence
	signingKey *token.SigningKey
	verifier   *token.Verifier
	pusher     *push.Sender // nil: Web Push is off
	root       http.Handler // what serves "/": the UI, or the proxy in front of it

	mu      sync.Mutex
	started []startedService // in start order; guarded by mu

	up       atomic.Bool // every module started
	srv      *http.Server
	ln       net.Listener
	tls      *tlsconf.TLS // nil with TLS off
	plainSrv *http.Server // tls.http_addr's redirect and HTTP-01 answers; nil when off
	plainLn  net.Listener
	opsSrv   *http.Server // nil without http.ops_addr
	opsLn    net.Listener
	serveErr chan error
	stopOnce sync.Once
}

type startedService struct {
	name string
	svc  service
}

// New prepares an App for cfg, which must have passed Validate (LoadConfig
// does that). Nothing starts before Start.
func New(cfg Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if logger == nil {
		logger = NewLogger(cfg.Log, os.Stderr)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}
	a := &App{cfg: cfg, log: logger, reg: prometheus.NewRegistry(), mux: http.NewServeMux(), set: resolve(cfg.Roles),
		secrets: urlSecrets(cfg.PubSub.RedisURL, cfg.Store.MongoURI)}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo())
	if cfg.Tracing.Enabled() {
		p, err := tracing.New(context.Background(), cfg.Tracing, tracing.Identity{
			Service: serviceName(cfg.Roles), Instance: cfg.NodeID, Version: BuildVersion(),
		}, logger.With("module", "tracing"))
		if err != nil {
			return nil, err
		}
		a.tracing, a.tp = p, p.TracerProvider()
	}
	return a, nil
}

// serviceName is the process's service.name in traces: chatd-ROLE for a
// process of one role, chatd for several (--role=all).
func serviceName(roles []string) string {
	if len(roles) == 1 && roles[0] != RoleAll {
		return "chatd-" + roles[0]
	}
	return "chatd"
}

// NewLogger returns the slog logger that cfg asks for.
func NewLogger(cfg LogConfig, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func defaultNodeID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "chatd"
	}
	return host + "-" + rand.Text()[:6]
}

// Config returns the validated configuration the App runs with.
func (a *App) Config() Config { return a.cfg }

// Start builds and starts every module of the process in dependency order
// (a module's init sees its dependencies running), then listens on
// http.addr. If a module fails, the ones already started are stopped in
// reverse order.
func (a *App) Start(ctx context.Context) error {
	gcfloor.Set(int64(a.cfg.Runtime.GCHeapFloorMB) << 20)
	// Listen first, so that a node whose backends are not up yet answers
	// /healthz (alive) and /readyz (503) while it waits for them; every
	// other path is 503 until the modules have started.
	a.mux.HandleFunc("GET /healthz", serveHealth)
	a.mux.HandleFunc("GET /readyz", a.serveReady)
	// /metrics lives on the ops listener; here it is a plain 404, not the
	// UI's page, so that a scraper left on the old address says so.
	a.mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { httpapi.WriteError(w, httpapi.ErrNotFound) })
	if err := a.listenOps(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.HTTP.Addr)
	if err != nil {
		a.closeOps()
		return fmt.Errorf("listen on %s (http.addr): %w", a.cfg.HTTP.Addr, err)
	}
	trusted, _ := httpapi.ParseProxies(a.cfg.HTTP.TrustedProxies) // Validate checked it
	ln = httpapi.LimitListener(ln, a.cfg.HTTP.MaxConns, a.cfg.HTTP.MaxConnsPerAddr, trusted, a.connRefused())
	a.ln = ln
	var handler http.Handler = http.HandlerFunc(a.serveHTTP)
	if a.tp != nil {
		// A request's traceparent is believed from http.trusted_proxies only.
		handler = tracing.Handler(a.tp, trusted, handler)
	}
	a.srv = &http.Server{
		Handler:           httpapi.BodyDeadline(handler, a.cfg.HTTP.BodyTimeout),
		ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	if ln, err = a.listenTLS(ln); err != nil {
		_ = a.ln.Close()
		a.closeOps()
		return redact(err, a.secrets) // the ACME cache may be on pubsub.redis_url
	}
	a.serveErr = make(chan error, 1)
	go func() { a.serveErr <- a.srv.Serve(ln) }()
	a.log.Info("chatd listening, starting modules", "addr", ln.Addr().String(), "tls", a.tls != nil, "roles", strings.Join(a.cfg.Roles, ","), "node", a.cfg.NodeID)
	a.warnHostTrusted(ln.Addr())

	for _, name := range a.set {
		m := modules[name]
		if m.init == nil {
			continue // a grouping
		}
		if err := a.startModule(ctx, name, m); err != nil {
			a.stopModules(context.Background())
			_ = a.srv.Close()
			a.stopTLS(context.Background())
			a.closeOps()
			return fmt.Errorf("start %s: %w", name, err)
		}
	}
	if a.root != nil {
		a.mux.Handle("/", a.root)
	}
	a.up.Store(true)
	a.log.Info("chatd ready", "addr", ln.Addr().String(), "ops_addr", a.OpsAddr())
	return nil
}

// listenOps serves /metrics, /healthz and /readyz on http.ops_addr, a
// listener of its own so that the public one never shows metrics (they
// name internal upstreams and counts an attacker would like to watch).
func (a *App) listenOps() error {
	if a.cfg.HTTP.OpsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.HTTP.OpsAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (http.ops_addr; empty turns the ops listener off): %w", a.cfg.HTTP.OpsAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", serveHealth)
	mux.HandleFunc("GET /readyz", a.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	a.opsLn = ln
	a.opsSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := a.opsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("ops listener", "addr", ln.Addr().String(), "err", err)
		}
	}()
	a.log.Info("ops listener: /metrics, /healthz, /readyz", "ops_addr", ln.Addr().String())
	return nil
}

func (a *App) closeOps() {
	if a.opsSrv != nil {
		_ = a.opsSrv.Close()
	}
}

func serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// warnHostTrusted warns when the Origin checks of the auth and chat roles
// fall back to the request's own scheme and Host (no http.public_origins)
// on a listener other hosts can reach: Host is then whatever the client,
// or a proxy in front, says.
func (a *App) warnHostTrusted(addr net.Addr) {
	if len(a.cfg.HTTP.PublicOrigins) > 0 || (!a.running(RoleAuth) && !a.running(RoleChat)) {
		return
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return
	}
	a.log.Warn("http.public_origins is not set: the Origin check of cookie-authenticated requests and WebSockets trusts each request's Host header and scheme; "+
		"set http.public_origins (CHATD_HTTP_PUBLIC_ORIGINS) to the origins users open chatd at, for example https://chat.example.com",
		"addr", addr.String())
}

// Backoff between two attempts to start a module whose backend is not
// reachable yet (modules with retry set): doubling, capped.
const (
	startBackoffMin = 200 * time.Millisecond
	startBackoffMax = 10 * time.Second
)

// startModule builds and starts one module. A module with retry set (the
// store and the broker, whose servers may come up after this process) is
// tried again with capped backoff, one WARN per failed attempt, until it
// starts or ctx ends; any other failure is returned at once.
func (a *App) startModule(ctx context.Context, name string, m module) error {
	backoff := startBackoffMin
	for attempt := 1; ; attempt++ {
		svc, err := m.init(a, ctx)
		if err == nil && svc != nil {
			if err = svc.Start(ctx); err == nil {
				a.mu.Lock()
				a.started = append(a.started, startedService{name, svc})
				a.mu.Unlock()
			}
		}
		if err == nil {
			if attempt > 1 {
				a.log.Info("module started", "module", name, "attempts", attempt)
			}
			return nil
		}
		// A driver's message may quote its URL: never log or return a
		// password of pubsub.redis_url or store.mongo_uri.
		err = redact(err, a.secrets)
		if !m.retry || !a.remoteBackend(name) || ctx.Err() != nil {
			return err
		}
		a.log.Warn("module not started, its backend may not be up yet; retrying", "module", name,
			"attempt", attempt, "retry_in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, startBackoffMax)
	}
}

// remoteBackend reports whether module name talks to a server of its own
// (MongoDB, Redis); an embedded backend that fails to open (SQLite in a
// directory it cannot write) will not get better by waiting.
func (a *App) remoteBackend(name string) bool {
	switch name {
	case modStore:
		return a.cfg.Store.Backend == "mongo"
	case modPubSub:
		return a.cfg.PubSub.Backend == "redis"
	}
	return false
}

// serveHTTP is the server's handler: the mux once every module started;
// before that, only the operational endpoints, and 503 for the rest.
func (a *App) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.up.Load() {
		switch r.URL.Path {
		case "/healthz", "/readyz":
		default:
			httpapi.WriteError(w, errStarting)
			return
		}
	}
	a.mux.ServeHTTP(w, r)
}

var errStarting = &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable,
	Message: "starting: waiting for a backend", RetryAfter: 2 * time.Second}

// Addr is the address the server listens on (useful with port 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// OpsAddr is the address of the ops listener, "" without one.
func (a *App) OpsAddr() string {
	if a.opsLn == nil {
		return ""
	}
	return a.opsLn.Addr().String()
}

// Wait returns when the HTTP server stopped by itself (an error) or ctx ended.
func (a *App) Wait(ctx context.Context) error {
	select {
	case err := <-a.serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		return nil
	}
}

// Shutdown stops accepting connections and, at the same time, drains the
// services that hold connections the HTTP server does not track (chat
// finishes in-flight sends and closes its WebSockets with 1001); then it
// stops every module in reverse start order.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, s := range a.services() {
			if d, ok := s.svc.(drainer); ok {
				wg.Go(func() {
					if e := d.Drain(ctx); e != nil {
						a.log.Warn("drain", "module", s.name, "err", redact(e, a.secrets))
					}
				})
			}
		}
		if a.srv != nil {
			err = a.srv.Shutdown(ctx)
		}
		a.stopTLS(ctx)
		wg.Wait()
		a.stopModules(ctx)
		if a.tracing != nil {
			if e := a.tracing.Shutdown(ctx); e != nil {
				a.log.Warn("tracing: flush at shutdown", "err", e)
			}
		}
		// The ops listener goes last: /healthz answers through the drain.
		if a.opsSrv != nil {
			if e := a.opsSrv.Shutdown(ctx); e != nil && err == nil {
				err = e
			}
		}
	})
	return err
}

// stopModules stops the started services in reverse order, once each.
func (a *App) stopModules(ctx context.Context) {
	a.mu.Lock()
	started := a.started
	a.started = nil
	a.mu.Unlock()
	for i := len(started) - 1; i >= 0; i-- {
		s := started[i]
		if err := s.svc.Stop(ctx); err != nil {
			a.log.Warn("stop", "module", s.name, "err", redact(err, a.secrets))
		}
	}
}

func (a *App) services() []startedService {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.started)
}

// readyTimeout bounds /readyz's checks together: a backend slower than
// that is not ready, and the answer (503) comes within the bound, well
// inside the gateway's health timeout (gateway.health_timeout, 1 s), which
// then sees a replica that answers (usable in panic mode), not a dead one.
const readyTimeout = 500 * time.Millisecond

// serveReady answers 200 when every started service that can tell is ready.
func (a *App) serveReady(w http.ResponseWriter, r *http.Request) {
	if !a.up.Load() {
		httpapi.WriteError(w, errStarting)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	for _, s := range a.services() {
		c, ok := s.svc.(readier)
		if !ok {
			continue
		}
		if err := c.Ready(ctx); err != nil {
			a.log.Warn("not ready", "check", s.name, "err", redact(err, a.secrets))
			httpapi.WriteError(w, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable,
				Message: s.name + " is not ready", RetryAfter: 2 * time.Second})
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

func (a *App) logger(module string) *slog.Logger { return a.log.With("module", module) }
