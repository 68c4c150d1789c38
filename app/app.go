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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatd/chatd/auth"
	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/chat"
	"github.com/chatd/chatd/gateway"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/mempubsub"
	"github.com/chatd/chatd/pubsub/redispubsub"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/mongostore"
	"github.com/chatd/chatd/store/sqlitestore"
	"github.com/chatd/chatd/ui"
)

// Module names.
const (
	modStore   = "store"
	modPubSub  = "pubsub"
	modKeys    = "keys"
	modAuth    = "auth"
	modChat    = "chat"
	modGateway = "gateway"
	modAll     = "all"
)

type module struct {
	deps []string
	init func(ctx context.Context) error // builds the module and registers its routes
	role bool                            // selectable with --role
}

// App is one running chatd process.
type App struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	mux     *http.ServeMux
	modules map[string]module

	store      store.Store
	broker     pubsub.Broker
	presence   pubsub.Presence
	redis      *redispubsub.Broker
	signingKey *token.SigningKey
	verifier   *token.Verifier
	chat       *chat.Service
	gateway    *gateway.Gateway

	// stops run in reverse order of registration at shutdown; ready checks
	// answer /readyz.
	stops []namedFunc
	ready []namedFunc

	srv      *http.Server
	ln       net.Listener
	serveErr chan error
	stopOnce sync.Once
}

type namedFunc struct {
	name string
	fn   func(ctx context.Context) error
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
	a := &App{cfg: cfg, log: logger, reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.modules = map[string]module{
		modStore:   {init: a.initStore},
		modPubSub:  {init: a.initPubSub},
		modKeys:    {init: a.initKeys},
		modAuth:    {deps: []string{modStore, modPubSub, modKeys}, init: a.initAuth, role: true},
		modChat:    {deps: []string{modStore, modPubSub, modKeys}, init: a.initChat, role: true},
		modGateway: {deps: []string{modKeys}, init: a.initGateway, role: true},
		modAll:     {deps: []string{modAuth, modChat, modGateway}, role: true},
	}
	return a, nil
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

// order returns the modules needed for the configured roles, dependencies first.
func (a *App) order() []string {
	var out []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		for _, d := range a.modules[name].deps {
			visit(d)
		}
		out = append(out, name)
	}
	for _, r := range a.cfg.Roles {
		visit(r)
	}
	return out
}

// Start initialises every needed module in dependency order, then listens
// on http.addr. If a module fails, the ones already started are stopped.
func (a *App) Start(ctx context.Context) error {
	for _, name := range a.order() {
		m := a.modules[name]
		if m.init == nil {
			continue
		}
		if err := m.init(ctx); err != nil {
			a.stopModules(context.Background())
			return fmt.Errorf("start %s: %w", name, err)
		}
	}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	a.mux.HandleFunc("GET /readyz", a.serveReady)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))

	ln, err := net.Listen("tcp", a.cfg.HTTP.Addr)
	if err != nil {
		a.stopModules(context.Background())
		return fmt.Errorf("listen on %s (http.addr): %w", a.cfg.HTTP.Addr, err)
	}
	a.ln = ln
	a.srv = &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.serveErr = make(chan error, 1)
	go func() { a.serveErr <- a.srv.Serve(ln) }()
	a.log.Info("chatd listening", "addr", ln.Addr().String(), "roles", strings.Join(a.cfg.Roles, ","), "node", a.cfg.NodeID)
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

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

// Shutdown stops accepting connections, lets in-flight requests and sends
// finish, closes WebSockets with 1001, then stops the modules in reverse
// order.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.stopOnce.Do(func() {
		var wg sync.WaitGroup
		if a.chat != nil {
			wg.Go(func() {
				if e := a.chat.Shutdown(ctx); e != nil {
					a.log.Warn("chat shutdown", "err", e)
				}
			})
		}
		if a.srv != nil {
			err = a.srv.Shutdown(ctx)
		}
		wg.Wait()
		a.stopModules(ctx)
	})
	return err
}

func (a *App) stopModules(ctx context.Context) {
	for i := len(a.stops) - 1; i >= 0; i-- {
		s := a.stops[i]
		if err := s.fn(ctx); err != nil {
			a.log.Warn("stop", "module", s.name, "err", err)
		}
	}
	a.stops = nil
}

func (a *App) onStop(name string, fn func(ctx context.Context) error) {
	a.stops = append(a.stops, namedFunc{name, fn})
}

func (a *App) onReady(name string, fn func(ctx context.Context) error) {
	a.ready = append(a.ready, namedFunc{name, fn})
}

func (a *App) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for _, c := range a.ready {
		if err := c.fn(ctx); err != nil {
			a.log.Warn("not ready", "check", c.name, "err", err)
			httpapi.WriteError(w, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable,
				Message: c.name + " is not ready", RetryAfter: 2 * time.Second})
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

func (a *App) logger(module string) *slog.Logger { return a.log.With("module", module) }

func (a *App) initStore(ctx context.Context) error {
	switch a.cfg.Store.Backend {
	case "mongo":
		wc := "majority"
		if !a.cfg.Store.MongoMajority {
			wc = "1"
		}
		s, err := mongostore.Open(ctx, a.cfg.Store.MongoURI, a.cfg.Store.MongoDatabase, mongostore.Options{WriteConcern: wc})
		if err != nil {
			return err
		}
		a.store = s
	default:
		if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data_dir: %w", err)
		}
		s, err := sqlitestore.Open(a.cfg.Store.SQLitePath, sqlitestore.Options{})
		if err != nil {
			return err
		}
		a.store = s
	}
	a.onStop(modStore, func(context.Context) error { return a.store.Close() })
	a.onReady(modStore, a.store.Ping)
	return nil
}

func (a *App) initPubSub(ctx context.Context) error {
	switch a.cfg.PubSub.Backend {
	case "redis":
		b, err := redispubsub.New(ctx, redispubsub.Options{
			URL:           a.cfg.PubSub.RedisURL,
			ChannelPrefix: a.cfg.PubSub.ChannelPrefix,
			PresenceTTL:   a.cfg.PubSub.PresenceTTL,
			NodeID:        a.cfg.NodeID,
			Logger:        a.logger(modPubSub),
		})
		if err != nil {
			return err
		}
		a.redis, a.broker, a.presence = b, b, b
	default:
		b := mempubsub.New()
		a.broker, a.presence = b, b
	}
	a.onStop(modPubSub, func(context.Context) error { return a.broker.Close() })
	a.onReady(modPubSub, a.broker.Ping)
	return nil
}

func (a *App) initKeys(context.Context) error {
	var keys token.KeySet
	if a.cfg.has(RoleAuth) {
		k, err := token.LoadOrCreateKey(a.cfg.Auth.KeyFile)
		if err != nil {
			return fmt.Errorf("auth.key_file: %w", err)
		}
		a.signingKey = k
		keys = k.KeySet()
	} else {
		keys = token.NewRemoteKeySet(a.cfg.Keys.JWKSURL, nil, a.cfg.Keys.MinRefetch)
	}
	a.verifier = token.NewVerifier(keys, a.cfg.Auth.Issuer, a.cfg.Auth.Audience)
	return nil
}

func (a *App) initAuth(context.Context) error {
	svc, err := auth.New(a.cfg.Auth, auth.Deps{
		Store:   a.store,
		Broker:  a.broker,
		Signer:  token.NewSigner(a.signingKey, a.cfg.Auth.Issuer, a.cfg.Auth.Audience, a.cfg.Auth.AccessTTL),
		Keys:    a.signingKey,
		Logger:  a.logger(modAuth),
		Metrics: a.reg,
	})
	if err != nil {
		return err
	}
	svc.Routes(a.mux)
	return nil
}

func (a *App) initChat(ctx context.Context) error {
	svc, err := chat.New(a.cfg.Chat, chat.Deps{
		Store:    a.store,
		Broker:   a.broker,
		Presence: a.presence,
		Verifier: a.verifier,
		NodeID:   a.cfg.NodeID,
		Logger:   a.logger(modChat),
		Metrics:  a.reg,
	})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	a.chat = svc
	// App.Shutdown runs chat.Shutdown beside http.Server.Shutdown; this stop
	// (a no-op then) covers a start-up that fails after chat started.
	a.onStop(modChat, svc.Shutdown)
	if a.redis != nil {
		a.redis.OnExpired(svc.UserWentOffline)
	}
	svc.Routes(a.mux)
	return nil
}

func (a *App) initGateway(ctx context.Context) error {
	if slices.Contains(a.cfg.Roles, RoleAll) {
		// One process: auth and chat are mounted on the same mux; the
		// gateway's part is serving the UI on the same origin.
		a.mux.Handle("/", ui.Handler())
		return nil
	}
	g, err := gateway.New(a.cfg.Gateway, gateway.Deps{
		Verifier: a.verifier,
		UI:       ui.Handler(),
		Logger:   a.logger(modGateway),
		Metrics:  a.reg,
	})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	a.gateway = g
	a.onStop(modGateway, g.Stop)
	a.onReady(modGateway, g.Ready)
	a.mux.Handle("/", g.Handler())
	return nil
}
