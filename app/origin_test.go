package app

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
)

// logBuffer is an io.Writer for a test's slog handler, safe for the
// server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogged boots --role=all on addr and returns it with its log.
func startLogged(t *testing.T, addr string, origins []string) (*App, *logBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.HTTP.Addr = addr
	cfg.HTTP.OpsAddr = "127.0.0.1:0" // tests run side by side; the default port would collide
	cfg.HTTP.PublicOrigins = origins
	cfg.DataDir = t.TempDir()
	cfg.Auth.Argon2.MemoryKiB = 1024
	logs := &logBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	return a, logs
}

const hostTrustedWarning = "http.public_origins is not set"

// With no public origins, a node reachable from other hosts says at
// start-up that its Origin check trusts Host; one on loopback, or with
// origins configured, does not.
func TestHostTrustedWarning(t *testing.T) {
	for _, c := range []struct {
		addr    string
		origins []string
		warn    bool
	}{
		{"0.0.0.0:0", nil, true},
		{"127.0.0.1:0", nil, false},
		{"0.0.0.0:0", []string{"https://chat.example.com"}, false},
	} {
		_, logs := startLogged(t, c.addr, c.origins)
		if got := strings.Contains(logs.String(), hostTrustedWarning); got != c.warn {
			t.Errorf("%s origins %v: warning %v, want %v; log:\n%s", c.addr, c.origins, got, c.warn, logs)
		}
		if c.warn && !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("%s: the warning is not at WARN:\n%s", c.addr, logs)
		}
	}
}

// An Origin with the request's host and port but another scheme is a
// foreign origin: a login from it is refused with 403 forbidden in
// api.md's error shape, and a WebSocket upgrade too.
func TestCrossSchemeOriginRefused(t *testing.T) {
	a, _ := startLogged(t, "127.0.0.1:0", nil)
	base := "http://" + a.Addr()
	alice := apitest.SignUp(t, base, "alice")

	for _, c := range []struct {
		origin string
		want   int
	}{
		{"https://" + a.Addr(), http.StatusForbidden},
		{"http://" + a.Addr(), http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodPost, base+"/auth/login",
			strings.NewReader(`{"username":"alice","password":"`+alice.Password+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", c.origin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := readResponse(t, res)
		if r.Status != c.want {
			t.Errorf("login with Origin %s: %d %s, want %d", c.origin, r.Status, r.Body, c.want)
		}
		if c.want == http.StatusForbidden && r.ErrorCode() != "forbidden" {
			t.Errorf("login with Origin %s: body %s, want error code forbidden", c.origin, r.Body)
		}
	}

	// The WebSocket handshake, by hand: same host and port, https scheme.
	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	alice.TakeToken()
	tok := alice.Token
	_, _ = conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: " + a.Addr() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://" + a.Addr() +
		"\r\nAuthorization: Bearer " + tok + "\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := readResponse(t, res)
	if r.Status != http.StatusForbidden || r.ErrorCode() != "forbidden" {
		t.Errorf("upgrade with a cross-scheme Origin: %d %s, want 403 forbidden", r.Status, r.Body)
	}
}

func readResponse(t *testing.T, res *http.Response) apitest.Response {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apitest.Response{Status: res.StatusCode, Header: res.Header, Body: b}
}
