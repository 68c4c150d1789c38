package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The gateway proxies a WebSocket upgrade itself rather than through
// httputil.ReverseProxy, whose upgrade path keeps the request's goroutine
// and three more (two io.Copy, one watching the request's context) for
// the socket's life: about 47 KB per idle socket, against a few KB for the
// two goroutines of a tunnel. The request it sends is the reverse proxy's,
// header for header: hop-by-hop headers removed, Connection and Upgrade
// put back, the client's Forwarded and X-Forwarded-* dropped, then the
// same Rewrite hook (rewrite: the allow-list, X-Forwarded-*, trace
// context).

const (
	// maxHandshakeHeader bounds an upstream's answer to an upgrade, status
	// line and header.
	maxHandshakeHeader = 64 << 10
	// maxRefusalBody bounds the body of an upgrade's refusal (a JSON error).
	maxRefusalBody = 64 << 10
)

// handshakeReaders and handshakeWriters are the buffers of the upgrades'
// handshakes with the upstreams, kept for the next handshake rather than
// left as garbage (a reconnect storm makes thousands at once).
var (
	handshakeReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	handshakeWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// hopHeaders are the hop-by-hop headers (RFC 9110 §7.6.1) a proxy removes,
// as httputil.ReverseProxy does.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop removes the hop-by-hop headers of h and those its
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// hasToken reports whether a comma-separated header value of vs holds
// token (case-insensitive).
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// upgradeType is the protocol h asks to upgrade to, "" for none.
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

func isPrintASCII(s string) bool {
	for i := range len(s) {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// upgradeRequest is the request sent upstream for the upgrade r, which
// carries its attempt (rewrite reads it).
func (g *Gateway) upgradeRequest(r *http.Request) (*http.Request, string, error) {
	upType := upgradeType(r.Header)
	if !isPrintASCII(upType) {
		return nil, "", fmt.Errorf("client tried to switch to invalid protocol %q", upType)
	}
	out := r.Clone(r.Context())
	out.Body, out.ContentLength, out.TransferEncoding, out.Close = nil, 0, nil, false
	removeHopByHop(out.Header)
	if hasToken(r.Header["Te"], "trailers") {
		out.Header.Set("Te", "trailers")
	}
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", upType)
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		out.Header.Del(k)
	}
	if _, err := url.ParseQuery(out.URL.RawQuery); err != nil || strings.Contains(out.URL.RawQuery, ";") {
		v, _ := url.ParseQuery(out.URL.RawQuery) // as the reverse proxy: drop what does not parse
		out.URL.RawQuery = v.Encode()
	}
	pr := &httputil.ProxyRequest{In: r, Out: out}
	g.rewrite(pr)
	out = pr.Out
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // not Go's default
	}
	return out, upType, nil
}

// dialUpstream connects to u (TLS for https://), within ctx.
func (g *Gateway) dialUpstream(ctx context.Context, u *url.URL) (net.Conn, error) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	conn, err := g.transport.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil || u.Scheme != "https" {
		return conn, err
	}
	cfg := g.transport.TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"} // an upgrade is HTTP/1.1
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, cfg)
	_ = conn.SetDeadline(time.Now().Add(responseHeaderTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// limitedReader fails once n bytes were read through it: an upstream's
// handshake answer is bounded.
type limitedReader struct {
	r io.Reader
	n int64
}

var errHandshakeTooLong = errors.New("gateway: the upstream's answer to an upgrade is too long")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHandshakeTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// serveTunnel proxies the WebSocket upgrade req to a.up: it sends the
// handshake, passes a refusal on as the reverse proxy would, and on 101
// hijacks the client, answers it and leaves the sockets to a tunnel. The
// outcome is in a (status, err), as the reverse proxy's hooks record it;
// it reports whether a tunnel took the sockets (and a.up's active count).
// drop is the upstream's tunnelDrop signal taken when the attempt started.
func (g *Gateway) serveTunnel(w *statusWriter, req *http.Request, a *attempt, drop context.Context) (tunneled bool) {
	ctx := req.Context()
	out, upType, err := g.upgradeRequest(req)
	if err != nil {
		a.err = err
		return
	}
	conn, err := g.dialUpstream(ctx, a.up.url)
	if err != nil {
		a.err = err
		return
	}
	defer func() {
		if !tunneled {
			_ = conn.Close()
		}
	}()
	// Until the upstream answers: the request's end (the client went
	// away, Stop, the upstream's drop) closes the connection, and the
	// answer has responseHeaderTimeout.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(responseHeaderTimeout))
	lr := &limitedReader{r: conn, n: maxHandshakeHeader}
	br := handshakeReaders.Get().(*bufio.Reader)
	br.Reset(lr)
	defer func() {
		br.Reset(nil)
		handshakeReaders.Put(br)
	}()
	res, err := g.handshake(conn, br, out)
	if err != nil {
		stop()
		a.err = err
		if ctx.Err() != nil {
			a.err = ctx.Err()
		}
		return
	}
	a.status = res.StatusCode
	if res.StatusCode != http.StatusSwitchingProtocols {
		// A refusal (401, 403, 429, 503...): pass it on, body included.
		defer stop()
		removeHopByHop(res.Header)
		copyHeader(w.Header(), res.Header)
		w.WriteHeader(res.StatusCode)
		lr.n = maxRefusalBody
		_, _ = io.Copy(w, res.Body)
		return
	}
	if !stop() {
		a.err = ctx.Err()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	resUpType := upgradeType(res.Header)
	if !isPrintASCII(resUpType) {
		a.err = fmt.Errorf("backend tried to switch to invalid protocol %q", resUpType)
		return
	}
	if !strings.EqualFold(upType, resUpType) {
		a.err = fmt.Errorf("backend tried to switch protocol %q when %q was requested", resUpType, upType)
		return
	}
	// Frames the upstream sent right behind its 101 (chat's hello).
	toClient, _ := br.Peek(br.Buffered())
	toClient = append([]byte(nil), toClient...)

	client, brw, err := w.Hijack()
	if err != nil {
		a.err = fmt.Errorf("hijack failed on protocol switch: %w", err)
		return
	}
	copyHeader(w.Header(), res.Header)
	res.Header = w.Header()
	res.Body = nil
	_ = client.SetDeadline(time.Time{})
	err = res.Write(brw)
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		_ = client.Close()
		a.err = fmt.Errorf("response write: %w", err)
		return
	}
	// Frames the client sent right behind its request.
	toUpstream, _ := brw.Peek(brw.Reader.Buffered())
	toUpstream = append([]byte(nil), toUpstream...)
	g.startTunnel(a.up, client, conn, toClient, toUpstream, drop)
	return true
}

// handshake writes out to conn and reads the upstream's answer from br,
// skipping informational answers other than 101.
func (g *Gateway) handshake(conn net.Conn, br *bufio.Reader, out *http.Request) (*http.Response, error) {
	bw := handshakeWriters.Get().(*bufio.Writer)
	bw.Reset(conn)
	err := out.Write(bw) // a *bufio.Writer: Write adds no buffer of its own
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	handshakeWriters.Put(bw)
	if err != nil {
		return nil, err
	}
	for range 5 {
		res, err := http.ReadResponse(br, out)
		if err != nil {
			return nil, err
		}
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			return res, nil
		}
	}
	return nil, errors.New("gateway: too many informational answers to an upgrade")
}

func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}
