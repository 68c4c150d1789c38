package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"

	"github.com/chatd/chatd/httpapi"
)

// attempt carries one proxy attempt's upstream into the Rewrite hook and
// its outcome out of the ModifyResponse and ErrorHandler hooks.
type attempt struct {
	up     *upstream
	status int   // the upstream's status, 0 if no response arrived
	err    error // the proxy error, if any
}

type attemptKey struct{}

func attemptOf(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

// proxyBufSize is the size of the REST proxy's copy buffers: what
// httputil.ReverseProxy would allocate for every response without a
// BufferPool (a reconnect storm's 10,000 small GETs were 320 MB of garbage).
const proxyBufSize = 32 << 10

// proxyBufs is the ReverseProxy's BufferPool.
type proxyBufs struct{ p sync.Pool }

func newProxyBufs() *proxyBufs {
	return &proxyBufs{p: sync.Pool{New: func() any { b := make([]byte, proxyBufSize); return &b }}}
}

func (b *proxyBufs) Get() []byte { return *b.p.Get().(*[]byte) }

func (b *proxyBufs) Put(buf []byte) {
	if cap(buf) == proxyBufSize { // only ours (the proxy hands back what Get gave)
		buf = buf[:proxyBufSize]
		b.p.Put(&buf)
	}
}

// forward proxies r to an upstream of p, retrying once on another upstream
// when that is safe:
//   - a request that failed to connect (dial error) never reached the
//     upstream, so any request may go elsewhere, a WebSocket upgrade too;
//   - an idempotent request (GET or HEAD, and POST /api/messages, which
//     client_msg_id makes idempotent; its body is buffered to replay it) is
//     also retried after any other transport error before a response.
//
// A WebSocket upgrade that reached an upstream is never retried.
func (g *Gateway) forward(w *statusWriter, r *http.Request, p *pool) {
	upgrade := isUpgrade(r.Header)
	replayable := !upgrade && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	var body []byte
	if !upgrade && r.Method == http.MethodPost && r.URL.Path == "/api/messages" {
		var err error
		if body, replayable, err = bufferBody(r); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "could not read the body"))
			return
		}
	}

	ctx := r.Context()
	if upgrade {
		if r.ContentLength != 0 {
			// Bytes behind the request would reach the upstream as frames.
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "an upgrade request has no body"))
			return
		}
		if g.closing.Err() != nil {
			g.writeUnavailable(w, p.kind)
			return
		}
		// Stop ends the upgrades still in their handshake (an open tunnel
		// ends with g.closing itself).
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(g.closing, cancel)()
		g.tunnels.Add(1)
		defer g.tunnels.Add(-1)
	}

	var failed *upstream
	for try := 0; try < 2; try++ {
		u := p.pick(failed)
		if u == nil {
			break
		}
		if try > 0 {
			g.metrics.retries.WithLabelValues(p.kind).Inc()
		}
		a := &attempt{up: u}
		actx := context.WithValue(ctx, attemptKey{}, a)
		stopDrop := func() bool { return false }
		var drop context.Context
		if upgrade {
			// An upstream that stops answering loses its tunnels (1001), so
			// that their clients reconnect to one that answers: the signal
			// taken now ends the handshake, then the tunnel.
			drop = u.drop.signal()
			var cancelAttempt context.CancelFunc
			actx, cancelAttempt = context.WithCancel(actx)
			stopDrop = context.AfterFunc(drop, cancelAttempt)
			defer cancelAttempt()
		}
		span := g.startAttempt(&actx, upgrade, p.kind, u, try)
		req := r.WithContext(actx)
		if body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			req.TransferEncoding = nil
		}
		g.serveUpstream(w, req, a, drop)
		stopDrop()
		endAttempt(span, a)

		if a.err == nil {
			if a.status == http.StatusBadGateway {
				g.proxyFailed(u, errors.New("upstream answered 502"))
			} else {
				proxySucceeded(u)
			}
			return
		}
		if r.Context().Err() != nil {
			return // the client went away: nothing to say about u, no one to answer
		}
		if ctx.Err() != nil {
			break // Stop: answer 503 without blaming u
		}
		if a.status == 0 && !w.hijacked {
			g.proxyFailed(u, a.err)
		}
		g.log.Warn("proxy error", "kind", p.kind, "upstream", u.name, "method", r.Method,
			"path", r.URL.Path, "attempt", try+1, "err", a.err)
		if w.wrote || (!replayable && !isDialError(a.err)) {
			break
		}
		failed = u
	}
	if !w.wrote && r.Context().Err() == nil {
		g.writeUnavailable(w, p.kind)
	}
}

// serveUpstream proxies req to a.up, counting it as active there until the
// response is done (for an upgrade, until its tunnel ends: the tunnel
// takes the count over). drop is set for an upgrade only: the upstream's
// tunnelDrop signal.
func (g *Gateway) serveUpstream(w *statusWriter, req *http.Request, a *attempt, drop context.Context) {
	a.up.active.Add(1)
	if drop != nil {
		if !g.serveTunnel(w, req, a, drop) {
			a.up.active.Add(-1)
		}
		return
	}
	defer a.up.active.Add(-1)
	g.proxy.ServeHTTP(w, req)
}

func (g *Gateway) writeUnavailable(w http.ResponseWriter, kind string) {
	httpapi.WriteError(w, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable,
		Message: "the " + kind + " service is unavailable, try again", RetryAfter: g.retryAfter})
}

// bufferBody reads r's body for replay when it is at most maxReplayBody
// bytes; a longer body is put back, unread parts included, and not replayable.
func bufferBody(r *http.Request) (body []byte, replayable bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, true, nil
	}
	if r.ContentLength > maxReplayBody {
		return nil, false, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
	if err != nil {
		return nil, false, err
	}
	if len(buf) > maxReplayBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil, false, nil
	}
	return buf, true, nil
}

// isUpgrade reports a protocol upgrade request (a WebSocket handshake), as
// the reverse proxy sees it: "Connection: upgrade" and an Upgrade header.
func isUpgrade(h http.Header) bool {
	if h.Get("Upgrade") == "" {
		return false
	}
	for _, v := range h.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// modifyResponse records that the upstream answered.
func modifyResponse(res *http.Response) error {
	if a := attemptOf(res.Request.Context()); a != nil {
		a.status = res.StatusCode
	}
	return nil
}

// recordError keeps the proxy error for forward, which decides between a
// retry and an answer; nothing is written here.
func recordError(_ http.ResponseWriter, r *http.Request, err error) {
	if a := attemptOf(r.Context()); a != nil {
		a.err = err
	}
}

// forwardedHeaders is the allow-list of request headers a replica gets:
// what chatd's API and WebSockets read, content negotiation and caching,
// the browser's fetch metadata, and W3C trace context. Everything else a
// client sends is dropped (X-User-Id, X-Chatd-*, X-Auth-*, X-Real-Ip,
// Forwarded, X-Forwarded-* and whatever name a future replica or library
// might believe), so a forged identity or address never reaches a replica;
// setForwarded then writes the gateway's own X-Forwarded-For, -Proto and
// -Host. Connection and Upgrade are the reverse proxy's own (it put them
// back for a WebSocket after removing the hop-by-hop headers), Te its
// "trailers".
var forwardedHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true,
	"Authorization": true, "Cookie": true,
	"Cache-Control": true, "Pragma": true,
	"If-Match": true, "If-None-Match": true, "If-Modified-Since": true, "If-Unmodified-Since": true,
	"If-Range": true, "Range": true,
	"Content-Type": true, "Content-Length": true, "Expect": true,
	"Origin": true, "Referer": true, "User-Agent": true,
	"Sec-Fetch-Site": true, "Sec-Fetch-Mode": true, "Sec-Fetch-Dest": true, "Sec-Fetch-User": true,
	"Connection": true, "Upgrade": true, "Te": true,
	"Sec-Websocket-Key": true, "Sec-Websocket-Version": true,
	"Sec-Websocket-Protocol": true, "Sec-Websocket-Extensions": true,
	"Traceparent": true, "Tracestate": true,
}

// keepAllowed drops every header of h that is not in forwardedHeaders.
func keepAllowed(h http.Header) {
	for k := range h {
		if !forwardedHeaders[http.CanonicalHeaderKey(k)] {
			delete(h, k)
		}
	}
}

// rewrite is the reverse proxy's Rewrite hook. By then the proxy has
// removed the hop-by-hop headers (keeping Upgrade for a WebSocket) and the
// client's Forwarded and X-Forwarded-* headers.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	a := attemptOf(pr.In.Context())
	pr.SetURL(a.up.url)
	// Keep the client's Host: the chat replicas check a WebSocket's Origin
	// (and a cookie-authenticated request's) against the request's Host by
	// default, so they must see the public host, not their own address.
	pr.Out.Host = pr.In.Host
	keepAllowed(pr.Out.Header)
	g.setForwarded(pr)
	propagateTrace(pr)
}

// setForwarded sets X-Forwarded-For/-Proto/-Host. The values a client sent
// are kept only when the connection comes from a trusted proxy; the
// connection's address is then appended to the chain.
func (g *Gateway) setForwarded(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	host := pr.In.Host
	peer := httpapi.PeerAddr(pr.In.RemoteAddr)
	var xff string
	if peer.IsValid() {
		xff = peer.String()
	}
	if peer.IsValid() && httpapi.Trusted(g.trusted, peer) {
		if prior := strings.Join(pr.In.Header.Values("X-Forwarded-For"), ", "); prior != "" {
			xff = prior + ", " + xff
		}
		if p := strings.ToLower(pr.In.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			proto = p
		}
		if fh := pr.In.Header.Get("X-Forwarded-Host"); fh != "" {
			host = fh
		}
	}
	if xff != "" {
		h.Set("X-Forwarded-For", xff)
	}
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", host)
}
