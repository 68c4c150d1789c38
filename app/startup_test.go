package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
)

// relay forwards TCP connections to target while up, and refuses them
// (accept, then close) while down: a backend that is not running yet.
type relay struct {
	ln     net.Listener
	target string
	up     atomic.Bool
	wg     sync.WaitGroup
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	r.wg.Go(r.serve)
	t.Cleanup(func() { _ = ln.Close(); r.wg.Wait() })
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.up.Load() {
			_ = c.Close()
			continue
		}
		r.wg.Go(func() {
			defer c.Close()
			b, err := net.Dial("tcp", r.target)
			if err != nil {
				return
			}
			defer b.Close()
			go func() { _, _ = io.Copy(b, c); _ = b.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(c, b)
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A chat node started while its MongoDB and Redis are not running yet
// does not exit: it listens at once (healthz ok, readyz 503, the API 503),
// retries its backends with backoff, and becomes ready and serves once they
// are up.
func TestChatNodeWaitsForItsBackends(t *testing.T) {
	m := testserver.StartMongo(t)
	rd := testserver.StartRedis(t)
	rd.Stop() // not running yet
	mongo := newRelay(t, strings.SplitN(strings.TrimPrefix(m.URI(), "mongodb://"), "/", 2)[0])

	cfg := DefaultConfig()
	cfg.Roles = []string{RoleChat}
	cfg.HTTP.Addr = freeAddr(t)
	cfg.HTTP.OpsAddr = "127.0.0.1:0" // tests run side by side; the default port would collide
	cfg.DataDir = t.TempDir()
	cfg.Log.Level = "error"
	cfg.Store.Backend = "mongo"
	cfg.Store.MongoURI = "mongodb://" + mongo.addr() + "/?connectTimeoutMS=500&serverSelectionTimeoutMS=500"
	cfg.Store.MongoDatabase = m.Database()
	cfg.PubSub.Backend = "redis"
	cfg.PubSub.RedisURL = rd.URL()
	cfg.Keys.JWKSURL = "http://127.0.0.1:1/.well-known/jwks.json"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- a.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = a.Shutdown(sctx)
	})

	base := "http://" + cfg.HTTP.Addr
	status := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	waitCond(t, started, "the node to listen while its backends are down", func() bool { return status("/healthz") == http.StatusOK })
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while the backends are down: %d, want 503", got)
	}
	if got := status("/api/conversations"); got != http.StatusServiceUnavailable {
		t.Fatalf("/api while the backends are down: %d, want 503", got)
	}

	// The backends come up, one after the other.
	time.Sleep(time.Second) // let a few attempts fail first
	mongo.up.Store(true)
	time.Sleep(time.Second)
	rd.Start()
	waitCond(t, started, "the node to become ready once its backends are up", func() bool { return status("/readyz") == http.StatusOK })
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not return once ready")
	}
	// It serves: an unauthenticated API call is refused by the chat role
	// itself (401), not by a node that is still starting.
	if got := status("/api/conversations"); got != http.StatusUnauthorized {
		t.Fatalf("/api once ready: %d, want 401", got)
	}
}

// waitCond polls cond until it holds, failing if Start returned an error
// first or a deadline passes.
func waitCond(t *testing.T, started chan error, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("waiting for %s: Start: %v", what, err)
			}
			started <- nil
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
