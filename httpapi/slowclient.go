package httpapi

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defences against slow clients (api.md 1.1: a request whose headers or
// body arrive too slowly is closed). http.Server.ReadHeaderTimeout bounds
// the headers; BodyDeadline the body; LimitListener the connections one
// address, or everyone, may hold open.

// BodyDeadline gives every request with a body d to deliver all of it: the
// connection's read deadline is set when the handler starts and cleared
// when the body has been read to its end, so that a slow upload is cut
// (the handler's read fails, the connection closes) while a handler that
// runs long after reading is not. WebSocket upgrades (and requests without
// a body) get no deadline.
func BodyDeadline(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || isUpgrade(r) {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
		h.ServeHTTP(w, r)
	})
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// deadlineBody clears the read deadline once the body is read to its end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// LimitListener caps the connections ln accepts: at most maxTotal open at
// once, and at most maxPerAddr from one client address (AddrKey: IPv4, or
// IPv6 /64) unless the peer is in exempt (the trusted proxies, through
// which many clients arrive). A connection over a cap is closed at once,
// before anything is read from it, and refused is called with its key
// (for a metric or a log line; it may be nil). 0 turns a cap off.
func LimitListener(ln net.Listener, maxTotal, maxPerAddr int, exempt []netip.Prefix, refused func(key string)) net.Listener {
	if maxTotal <= 0 && maxPerAddr <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, maxTotal: maxTotal, maxPerAddr: maxPerAddr, exempt: exempt, refused: refused, byAddr: make(map[string]int)}
}

type limitListener struct {
	net.Listener
	maxTotal, maxPerAddr int
	exempt               []netip.Prefix
	refused              func(string)

	mu     sync.Mutex
	total  int
	byAddr map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := PeerAddr(c.RemoteAddr().String())
		key := AddrKey(ip)
		perAddr := l.maxPerAddr > 0 && (!ip.IsValid() || !Trusted(l.exempt, ip))
		if l.acquire(key, perAddr) {
			return &limitedConn{Conn: c, release: func() { l.release(key, perAddr) }}, nil
		}
		_ = c.Close()
		if l.refused != nil {
			l.refused(key)
		}
	}
}

func (l *limitListener) acquire(key string, perAddr bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxTotal > 0 && l.total >= l.maxTotal {
		return false
	}
	if perAddr && l.byAddr[key] >= l.maxPerAddr {
		return false
	}
	l.total++
	if perAddr {
		l.byAddr[key]++
	}
	return true
}

func (l *limitListener) release(key string, perAddr bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if perAddr {
		if l.byAddr[key]--; l.byAddr[key] <= 0 {
			delete(l.byAddr, key)
		}
	}
}

// limitedConn gives its place back once, on the first Close (also when
// the connection was hijacked for a WebSocket).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection under the limit's wrapper (as tls.Conn's
// NetConn does), for code that tunes the TCP socket itself.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }
