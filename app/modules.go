package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/chatd/chatd/auth"
	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/chat"
	"github.com/chatd/chatd/gateway"
	"github.com/chatd/chatd/pubsub/mempubsub"
	"github.com/chatd/chatd/pubsub/redispubsub"
	"github.com/chatd/chatd/push"
	"github.com/chatd/chatd/store/mongostore"
	"github.com/chatd/chatd/store/sqlitestore"
	"github.com/chatd/chatd/ui"
)

// Module names. The role names (RoleAuth, RoleChat, RoleGateway, RoleAll)
// are modules too.
const (
	modStore      = "store"
	modPubSub     = "pubsub"
	modSigningKey = "signing-key"
	modVerifier   = "verifier"
	modUI         = "ui"
	modProxy      = "proxy"
	modPush       = "push"
)

// service is what a module's init returns: the running part of the module.
// Start begins its work (ctx bounds Start only); if Start fails the service
// holds nothing and Stop is not called. Stop releases everything and waits
// for its goroutines until ctx ends; it is called once, after every module
// that depends on it has stopped.
type service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// readier is a service that answers /readyz (every one must be ready).
type readier interface {
	Ready(ctx context.Context) error
}

// drainer is a service that holds connections http.Server.Shutdown neither
// tracks nor closes (hijacked WebSockets). Drain runs beside
// http.Server.Shutdown: it refuses new work, finishes what is in flight and
// closes those connections. Stop follows once the server is down.
type drainer interface {
	Drain(ctx context.Context) error
}

// module is one row of the module table.
type module struct {
	deps []string // built and started before this one, and pulled in by it
	// after orders this module after those when they run in this process,
	// without pulling them in.
	after []string
	// unless leaves the module out when every one of those runs in this
	// process: the gateway's proxy has nothing to forward to then.
	unless []string
	role   bool // selectable with --role
	// retry: a failed start is tried again with backoff (the module
	// connects to a server that may come up after this process).
	retry bool
	// init builds the module, registers its routes and returns its service
	// (nil: nothing to start or stop). Dependencies are running when it runs.
	init func(a *App, ctx context.Context) (service, error)
}

// modules is the module table: what each role runs. `all` is only a
// grouping, so --role=auth,chat,gateway is the same process.
var modules = map[string]module{
	modStore:      {init: (*App).initStore, retry: true},
	modPubSub:     {init: (*App).initPubSub, retry: true},
	modSigningKey: {init: (*App).initSigningKey},
	modVerifier:   {after: []string{modSigningKey}, init: (*App).initVerifier},
	modUI:         {init: (*App).initUI},
	modProxy:      {deps: []string{modVerifier, modUI}, unless: []string{RoleAuth, RoleChat}, init: (*App).initProxy},
	modPush:       {deps: []string{modStore, modPubSub}, init: (*App).initPush},
	RoleAuth:      {deps: []string{modStore, modPubSub, modSigningKey}, init: (*App).initAuth, role: true},
	RoleChat:      {deps: []string{modStore, modPubSub, modVerifier, modPush}, init: (*App).initChat, role: true},
	RoleGateway:   {deps: []string{modUI, modProxy}, role: true},
	RoleAll:       {deps: []string{RoleAuth, RoleChat, RoleGateway}, role: true},
}

// roleNames lists the selectable roles, for messages.
func roleNames() string {
	var names []string
	for name, m := range modules {
		if m.role {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// resolve returns the modules that roles run, dependencies first.
func resolve(roles []string) []string {
	closure := func(skip func(string) bool) []string {
		var out []string
		seen := map[string]bool{}
		var visit func(string)
		visit = func(name string) {
			if seen[name] || skip(name) {
				return
			}
			seen[name] = true
			for _, d := range modules[name].deps {
				visit(d)
			}
			out = append(out, name)
		}
		for _, r := range roles {
			visit(r)
		}
		return out
	}
	wanted := closure(func(string) bool { return false })
	set := closure(func(name string) bool {
		u := modules[name].unless
		return len(u) > 0 && !slices.ContainsFunc(u, func(n string) bool { return !slices.Contains(wanted, n) })
	})
	// Order: dependencies and `after` first, otherwise as visited.
	var out []string
	placed := map[string]bool{}
	var place func(string)
	place = func(name string) {
		if placed[name] {
			return
		}
		placed[name] = true
		for _, d := range slices.Concat(modules[name].deps, modules[name].after) {
			if slices.Contains(set, d) {
				place(d)
			}
		}
		out = append(out, name)
	}
	for _, name := range set {
		place(name)
	}
	return out
}

// dependents returns every module of the table that depends on name
// directly, whether or not it runs.
func dependents(name string) []string {
	var out []string
	for n, m := range modules {
		if slices.Contains(m.deps, name) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (a *App) running(name string) bool { return slices.Contains(a.set, name) }

func (a *App) initStore(ctx context.Context) (service, error) {
	switch a.cfg.Store.Backend {
	case "mongo":
		wc := "majority"
		if !a.cfg.Store.MongoMajority {
			wc = "1"
		}
		s, err := mongostore.Open(ctx, a.cfg.Store.MongoURI, a.cfg.Store.MongoDatabase, mongostore.Options{WriteConcern: wc})
		if err != nil {
			return nil, err
		}
		a.store = s
		return s, nil
	default:
		if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
		opts := sqlitestore.Options{BatchWait: a.cfg.Store.SQLiteBatchWait}
		if a.cfg.DataDir != "" {
			opts.AttachmentDir = filepath.Join(a.cfg.DataDir, "attachments")
		}
		s, err := sqlitestore.Open(a.cfg.Store.SQLitePath, opts)
		if err != nil {
			return nil, err
		}
		a.sqliteMetrics(s)
		a.store = s
		// The writer blocks in fsync holding a P: give the rest of the
		// node one to run on meanwhile (app/procs.go).
		if def, set := setProcs(a.cfg.Runtime.ExtraProcs); set != def {
			a.logger(modStore).Info("GOMAXPROCS raised for the SQLite writer's fsync", "default", def, "gomaxprocs", set)
		}
		return s, nil
	}
}

func (a *App) initPubSub(ctx context.Context) (service, error) {
	switch a.cfg.PubSub.Backend {
	case "redis":
		b, err := redispubsub.New(ctx, redispubsub.Options{
			URL:           a.cfg.PubSub.RedisURL,
			CAFile:        a.cfg.PubSub.RedisCAFile,
			CertFile:      a.cfg.PubSub.RedisCertFile,
			KeyFile:       a.cfg.PubSub.RedisKeyFile,
			ChannelPrefix: a.cfg.PubSub.ChannelPrefix,
			PresenceTTL:   a.cfg.PubSub.PresenceTTL,
			NodeID:        a.cfg.NodeID,
			Logger:        a.logger(modPubSub),
		})
		if err != nil {
			return nil, err
		}
		a.broker, a.presence = b, b
		return b, nil
	default:
		b := mempubsub.New()
		a.broker, a.presence = b, b
		return b, nil
	}
}

func (a *App) initSigningKey(context.Context) (service, error) {
	k, err := token.LoadOrCreateKey(a.cfg.Auth.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("auth.key_file: %w", err)
	}
	a.signingKey = k
	return nil, nil
}

// initVerifier verifies with the local signing key when this process has
// it, otherwise with the auth role's JWKS.
func (a *App) initVerifier(context.Context) (service, error) {
	var keys token.KeySet
	if a.running(modSigningKey) {
		keys = a.signingKey.KeySet()
	} else {
		client, err := jwksClient(a.cfg.Keys.CAFile)
		if err != nil {
			return nil, err
		}
		keys = token.NewRemoteKeySet(a.cfg.Keys.JWKSURL, client, a.cfg.Keys.MinRefetch)
	}
	a.verifier = token.NewVerifier(keys, a.cfg.Auth.Issuer, a.cfg.Auth.Audience)
	return nil, nil
}

// initUI serves the web UI at the root of the origin; the proxy, when it
// runs, takes the root over and serves the UI behind it.
func (a *App) initUI(context.Context) (service, error) {
	a.root = ui.Handler()
	return nil, nil
}

func (a *App) initAuth(context.Context) (service, error) {
	svc, err := auth.New(a.cfg.Auth, auth.Deps{
		Store:   a.store,
		Broker:  a.broker,
		Signer:  token.NewSigner(a.signingKey, a.cfg.Auth.Issuer, a.cfg.Auth.Audience, a.cfg.Auth.AccessTTL),
		Keys:    a.signingKey,
		Logger:  a.logger(RoleAuth),
		Metrics: a.reg,
	})
	if err != nil {
		return nil, err
	}
	svc.Routes(a.mux)
	// The auth role prunes ended sessions (the pruner is its running part).
	return auth.NewSessionPruner(a.store, a.cfg.Auth, a.logger(RoleAuth)), nil
}

// initPush loads the VAPID key and builds the push sender. A process with
// the in-process broker runs alone and creates the key when missing; chat
// replicas must share one key, so they never create one: a missing
// push.vapid_key_file is an error when it was set, and turns push off
// (with a WARN) when it is the default <data_dir>/vapid.key.
func (a *App) initPush(context.Context) (service, error) {
	cfg := a.cfg.Push
	if !cfg.Enabled {
		return nil, nil
	}
	log := a.logger(modPush)
	var (
		key *push.Key
		err error
	)
	if a.cfg.PubSub.Backend == "memory" {
		key, err = push.LoadOrCreateKey(cfg.VAPIDKeyFile)
	} else {
		key, err = push.LoadKey(cfg.VAPIDKeyFile)
		if errors.Is(err, fs.ErrNotExist) {
			const how = "every chat replica needs the same VAPID key: create one (openssl ecparam -name prime256v1 -genkey -noout -out vapid.key) and give each replica the file as push.vapid_key_file"
			if !a.cfg.vapidKeyDefault {
				return nil, fmt.Errorf("push.vapid_key_file: %s does not exist; %s, or set push.enabled=false", cfg.VAPIDKeyFile, how)
			}
			log.Warn("push is off: no VAPID key; "+how, "path", cfg.VAPIDKeyFile)
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("push.vapid_key_file: %w", err)
	}
	var subject string
	for _, o := range a.cfg.HTTP.PublicOrigins {
		if strings.HasPrefix(o, "https://") {
			subject = strings.TrimSuffix(o, "/")
			break
		}
	}
	s, err := push.New(cfg, push.Deps{
		Store: a.store, Presence: a.presence, Key: key, Subject: subject,
		Logger: log, Metrics: a.reg,
	})
	if err != nil {
		return nil, err
	}
	a.pusher = s
	return s, nil
}

func (a *App) initChat(context.Context) (service, error) {
	var notifier chat.Notifier
	if a.pusher != nil {
		notifier = a.pusher
	}
	svc, err := chat.New(a.cfg.Chat, chat.Deps{
		Notifier: notifier,
		Store:    a.store,
		Broker:   a.broker,
		Presence: a.presence,
		Verifier: a.verifier,
		NodeID:   a.cfg.NodeID,
		Logger:   a.logger(RoleChat),
		Metrics:  a.reg,
		Tracer:   a.tp,
	})
	if err != nil {
		return nil, err
	}
	svc.Routes(a.mux)
	return svc, nil
}

func (a *App) initProxy(context.Context) (service, error) {
	g, err := gateway.New(a.cfg.Gateway, gateway.Deps{
		Verifier: a.verifier,
		UI:       a.root,
		Logger:   a.logger(RoleGateway),
		Metrics:  a.reg,
		Tracer:   a.tp,
	})
	if err != nil {
		return nil, err
	}
	a.root = g.Handler()
	return g, nil
}
