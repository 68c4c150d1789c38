// Package gateway is the public edge of a split chatd deployment: one
// origin that serves the web UI and reverse-proxies /auth/* to the auth
// replicas and /api/* and /ws to the chat replicas.
//
// It balances (round robin for auth, least active connections for chat),
// checks upstream health actively (GET /readyz) and passively (consecutive
// proxy failures), retries idempotent requests once on another replica,
// verifies access tokens at the edge before anything reaches a chat replica,
// forwards only an allow-list of request headers (so no identity or address
// header a client forges reaches a replica), and rate limits logins per
// client address.
package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"go.opentelemetry.io/otel/trace"
)

// Deps are the gateway's collaborators.
type Deps struct {
	// Verifier checks access tokens at the edge (required). In production
	// its key set is token.NewRemoteKeySet on an auth replica's /auth/jwks.
	Verifier *token.Verifier
	// UI serves every path that is not /auth, /api or /ws; nil answers 404.
	UI      http.Handler
	Logger  *slog.Logger          // nil discards
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	// Resolver looks up gateway.chat_dns; nil is net.DefaultResolver.
	Resolver *net.Resolver
	// Tracer gives each proxied request a client span per upstream
	// attempt, whose traceparent the upstream continues; nil: tracing off.
	Tracer trace.TracerProvider
}

// Gateway is the edge reverse proxy. Create it with New, mount Handler,
// then Start its health checks; Stop ends them and any proxied WebSocket.
type Gateway struct {
	cfg      Config
	verifier *token.Verifier
	ui       http.Handler
	log      *slog.Logger
	metrics  *metrics
	tracer   trace.Tracer // nil when tracing is off

	auth, chat   *pool
	pools        []*pool
	disc         *discovery // nil without gateway.chat_dns
	trusted      []netip.Prefix
	limiter      *httpapi.Limiter // nil when the login limit is off
	retryAfter   time.Duration
	proxy        *httputil.ReverseProxy
	transport    *http.Transport
	healthClient *http.Client

	// closing is canceled by Stop: proxied WebSockets end with it.
	closing   context.Context
	closeAll  context.CancelFunc
	tunnels   atomic.Int64 // upgrade requests in flight and open tunnels
	mu        sync.Mutex
	started   bool
	stopped   bool
	stopLoop  context.CancelFunc
	loopDone  chan struct{}
	handlerFn http.Handler
}

// Timeouts of the proxy transport; not configurable because nothing in
// chatd should come near them.
const (
	dialTimeout           = 3 * time.Second
	responseHeaderTimeout = 30 * time.Second
	// maxReplayBody is the largest request body buffered for a retry (the
	// API's body limit).
	maxReplayBody = 64 << 10
	// maxLimiterEntries bounds the login limiter's per-address map.
	maxLimiterEntries = 100_000
)

// New builds a gateway from a valid cfg.
func New(cfg Config, d Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Verifier == nil {
		return nil, errors.New("gateway: a token verifier is required")
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	trusted, err := httpapi.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("http.trusted_proxies: %w", err)
	}
	g := &Gateway{
		cfg:        cfg,
		verifier:   d.Verifier,
		ui:         d.UI,
		log:        log,
		auth:       &pool{kind: kindAuth},
		chat:       &pool{kind: kindChat, leastConn: true},
		trusted:    trusted,
		retryAfter: max(cfg.HealthInterval, time.Second),
	}
	g.pools = []*pool{g.auth, g.chat}
	if d.Tracer != nil {
		g.tracer = d.Tracer.Tracer("github.com/chatd/chatd/gateway")
	}
	var authUps, chatUps []*upstream
	for _, s := range cfg.AuthUpstreams {
		u, err := newUpstream(kindAuth, s)
		if err != nil {
			return nil, fmt.Errorf("gateway.auth_upstreams: %w", err)
		}
		authUps = append(authUps, u)
	}
	for _, s := range cfg.ChatUpstreams {
		u, err := newUpstream(kindChat, s)
		if err != nil {
			return nil, fmt.Errorf("gateway.chat_upstreams: %w", err)
		}
		chatUps = append(chatUps, u)
	}
	g.auth.set(authUps)
	g.chat.set(chatUps)
	if g.disc, err = newDiscovery(cfg, d.Resolver, log); err != nil {
		return nil, err
	}
	if cfg.LoginRateLimit > 0 {
		g.limiter = httpapi.NewLimiter(cfg.LoginRateLimit, cfg.LoginBurst, maxLimiterEntries)
	}
	if g.metrics, err = newMetrics(d.Metrics, g.pools); err != nil {
		return nil, err
	}
	g.closing, g.closeAll = context.WithCancel(context.Background())
	upstreamTLS, err := upstreamTLSConfig(cfg.UpstreamCAFile)
	if err != nil {
		return nil, err
	}
	g.transport = &http.Transport{
		TLSClientConfig:       upstreamTLS,
		Proxy:                 nil, // never an environment proxy between the gateway and its replicas
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	g.healthClient = &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			TLSClientConfig:     upstreamTLS,
			DialContext:         (&net.Dialer{Timeout: cfg.HealthTimeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     max(2*cfg.HealthInterval, 30*time.Second),
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      g.transport, // not for upgrades: serveTunnel proxies those
		BufferPool:     newProxyBufs(),
		ModifyResponse: modifyResponse,
		ErrorHandler:   recordError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	g.handlerFn = http.HandlerFunc(g.serveHTTP)
	return g, nil
}

// upstreamTLSConfig trusts the CA certificates of file (none: the system
// roots) for https:// upstreams, over TLS 1.2 or later.
func upstreamTLSConfig(file string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if file == "" {
		return c, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("gateway.upstream_ca_file: %w", err)
	}
	c.RootCAs = x509.NewCertPool()
	if !c.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("gateway.upstream_ca_file: %s holds no PEM certificate", file)
	}
	return c, nil
}

// Handler returns the handler of the whole public origin: /auth/*, /api/*,
// /ws and the UI. /healthz, /readyz and /metrics are not in it; the app
// mounts those ahead of it.
func (g *Gateway) Handler() http.Handler { return g.handlerFn }

// Start runs a first round of health checks (so that Ready is accurate
// when it returns) and then checks every HealthInterval until Stop. ctx
// only bounds Start itself.
func (g *Gateway) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gateway: start: %w", err)
	}
	g.mu.Lock()
	if g.started || g.stopped {
		g.mu.Unlock()
		return errors.New("gateway: start: already started or stopped")
	}
	g.started = true
	loopCtx, cancel := context.WithCancel(context.Background())
	g.stopLoop, g.loopDone = cancel, make(chan struct{})
	g.mu.Unlock()

	g.disc.start(ctx, loopCtx, g)
	g.checkAll(loopCtx)
	go g.healthLoop(loopCtx, g.loopDone)
	return nil
}

// Stop ends the health checks and closes every proxied WebSocket (the
// client sees the connection drop and reconnects; the chat replica behind
// it sees its socket close). It waits for them until ctx ends. Call it
// after http.Server.Shutdown, which does not track hijacked connections.
func (g *Gateway) Stop(ctx context.Context) error {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return nil
	}
	g.stopped = true
	stopLoop, loopDone := g.stopLoop, g.loopDone
	g.mu.Unlock()

	g.closeAll()
	if stopLoop != nil {
		stopLoop()
		select {
		case <-loopDone:
		case <-ctx.Done():
			return fmt.Errorf("gateway: stop: %w", ctx.Err())
		}
		if err := g.disc.wait(ctx); err != nil {
			return fmt.Errorf("gateway: stop: %w", err)
		}
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for g.tunnels.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("gateway: stop: %d websocket(s) still open: %w", g.tunnels.Load(), ctx.Err())
		}
	}
	g.transport.CloseIdleConnections()
	g.healthClient.CloseIdleConnections()
	return nil
}

// Ready reports an error unless the gateway can route to at least one auth
// and one chat upstream, healthy or in panic mode (answering, though not
// ready): an outer load balancer that took the gateway out whenever every
// replica reported unready would undo panic mode.
func (g *Gateway) Ready(ctx context.Context) error {
	for _, p := range g.pools {
		if p.usableCount() == 0 {
			return fmt.Errorf("gateway: no %s upstream answers", p.kind)
		}
	}
	return nil
}

// Route kinds, the "route" label of the request metric.
const (
	routeAuth = "auth"
	routeAPI  = "api"
	routeWS   = "ws"
	routeUI   = "ui"
)

func routeOf(path string) string {
	switch {
	case path == "/ws":
		return routeWS
	case path == "/api" || strings.HasPrefix(path, "/api/"):
		return routeAPI
	case path == "/auth" || strings.HasPrefix(path, "/auth/"):
		return routeAuth
	}
	return routeUI
}

func (g *Gateway) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	route := routeOf(r.URL.Path)
	w := &statusWriter{ResponseWriter: rw}
	defer func() {
		status := w.status
		if status == 0 {
			if r.Context().Err() != nil {
				status = 499 // the client went away before an answer
			} else {
				status = http.StatusOK
			}
		}
		g.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	}()

	switch route {
	case routeUI:
		if g.ui == nil {
			httpapi.WriteError(w, httpapi.ErrNotFound)
			return
		}
		g.ui.ServeHTTP(w, r)
	case routeAuth:
		if g.limiter != nil && r.Method == http.MethodPost &&
			(r.URL.Path == "/auth/login" || r.URL.Path == "/auth/token") {
			if ok, wait := g.limiter.Allow(httpapi.AddrKey(httpapi.ClientAddr(r, g.trusted)), time.Now()); !ok {
				httpapi.WriteError(w, httpapi.RateLimited(wait, "too many login attempts from this address, try again later"))
				return
			}
		}
		g.forward(w, r, g.auth)
	default: // api, ws
		// Edge authentication: a request without a valid access token never
		// reaches a chat replica (which verifies it again, and also checks
		// revocation and the same-origin rule).
		if err := g.authenticate(r); errors.Is(err, token.ErrKeysUnavailable) {
			// Auth's keys could not be fetched: the token may be valid,
			// so 503 (retry), not 401 (which logs the user out).
			httpapi.WriteError(w, httpapi.Fail(g.log, "verify token", err))
			return
		} else if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chatd"`)
			httpapi.WriteError(w, httpapi.ErrUnauthenticated)
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/api/attachments" {
			// An upload's body may take longer than http.body_timeout.
			httpapi.ExtendBodyDeadline(w, uploadDeadlineSize(r.ContentLength))
		}
		g.forward(w, r, g.chat)
	}
}

// uploadDeadlineSize is the size an upload's body deadline is computed
// for: what the client declared (the replica refuses more than
// chat.max_attachment_bytes at once), at most maxUploadDeadlineSize, or
// defaultUploadSize when the body is chunked.
func uploadDeadlineSize(declared int64) int64 {
	const defaultUploadSize, maxUploadDeadlineSize = 25 << 20, 1 << 30
	switch {
	case declared < 0:
		return defaultUploadSize
	case declared > maxUploadDeadlineSize:
		return maxUploadDeadlineSize
	}
	return declared
}

// statusWriter records the status for metrics and whether the response has
// started (then a failed attempt can no longer be retried or answered).
type statusWriter struct {
	http.ResponseWriter
	status   int  // final status written, 101 once hijacked
	wrote    bool // any header, informational ones included
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	w.wrote = true
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush is used by the reverse proxy for streamed responses.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.wrote = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack is used by the reverse proxy after a 101 Switching Protocols.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked, w.wrote, w.status = true, true, http.StatusSwitchingProtocols
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
