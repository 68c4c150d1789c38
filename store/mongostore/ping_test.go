package mongostore_test

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store/mongostore"
)

// A node's readiness must not wait behind its own load: under a reconnect
// storm every connection of the driver's pool was busy with reads, Ping
// queued for one past /readyz's 0.5 s ("timed out while checking out a
// connection from connection pool"), and the gateway took busy replicas out
// of rotation exactly when they were needed (docs/performance.md, the storm
// through the gateway). Here every pooled connection is held by a read the
// server has answered but whose answer a proxy keeps back; Ping, with
// /readyz's bound, must still answer.
func TestPingWithPoolBusy(t *testing.T) {
	m := testserver.StartMongo(t)
	u, err := url.Parse(m.URI())
	if err != nil || strings.Contains(u.Host, ",") || u.Scheme != "mongodb" {
		t.Skipf("the proxy needs a single-host mongodb:// URI, not %q", m.URI())
	}
	const marker = "pool-holder-read"
	p := startHoldingProxy(t, u.Host, []byte(marker))
	u.Host = p.addr
	q := u.Query()
	q.Set("directConnection", "true") // a replica set's members would bypass the proxy
	u.RawQuery = q.Encode()

	const pool = 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := mongostore.Open(ctx, u.String(), m.Database(), mongostore.Options{MaxPoolSize: pool, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { _ = s.Close() }()

	var reads sync.WaitGroup
	for range pool {
		reads.Go(func() { _, _ = s.UserByUsername(ctx, marker) }) // held until release
	}
	for p.held.Load() < pool {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d reads reached the server", p.held.Load(), pool)
		}
		time.Sleep(10 * time.Millisecond)
	}

	pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // app's readyTimeout
	err = s.Ping(pctx)
	pcancel()
	p.release()
	reads.Wait()
	if err != nil {
		t.Fatalf("Ping with every pooled connection busy: %v", err)
	}
}

// holdingProxy forwards TCP connections to a server; once a connection
// has carried a request containing its marker, the server's bytes on that
// connection are kept back until release.
type holdingProxy struct {
	addr    string
	marker  []byte
	held    atomic.Int32 // connections holding an answer back
	done    chan struct{}
	closeMu sync.Once
}

func startHoldingProxy(t *testing.T, upstream string, marker []byte) *holdingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{addr: l.Addr().String(), marker: marker, done: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		p.release()
		_ = l.Close()
		conns.Wait()
	})
	conns.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { p.serve(c, upstream) })
		}
	})
	return p
}

func (p *holdingProxy) release() { p.closeMu.Do(func() { close(p.done) }) }

func (p *holdingProxy) serve(c net.Conn, upstream string) {
	defer c.Close()
	s, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer s.Close()
	var marked atomic.Bool
	go func() { // client to server, watching for the marker
		defer s.Close()
		buf := make([]byte, 64<<10)
		var tail []byte // the end of the last read, for a marker split across reads
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if !marked.Load() && bytes.Contains(append(tail, buf[:n]...), p.marker) {
					marked.Store(true)
				}
				tail = append(tail[:0], buf[max(0, n-len(p.marker)):n]...)
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 && marked.Load() {
			p.held.Add(1)
			<-p.done
			p.held.Add(-1)
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
