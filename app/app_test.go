package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
)

// startAll boots `--role=all` in this process on a free port with a fresh
// data directory and returns its base URL.
func startAll(t *testing.T, dataDir string) (*App, string) {
	t.Helper()
	a := startApp(t, testConfig(dataDir), nil)
	return a, "http://" + a.Addr()
}

// testConfig is `--role=all` on free loopback ports with fast hashing.
func testConfig(dataDir string) Config {
	cfg := DefaultConfig()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.OpsAddr = "127.0.0.1:0" // tests run side by side; the default port would collide
	cfg.DataDir = dataDir
	cfg.Auth.Argon2.MemoryKiB = 1024 // fast hashing in tests; the defaults are OWASP's
	cfg.Log.Level = "warn"
	return cfg
}

// startApp starts an App for cfg (after edit, when not nil) and shuts it
// down at the end of t.
func startApp(t *testing.T, cfg Config, edit func(*Config)) *App {
	t.Helper()
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg, nil)
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
	return a
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoleAllServesEverything(t *testing.T) {
	a, base := startAll(t, t.TempDir())

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("readyz %d %s", code, body)
	}
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(strings.ToLower(body), "<!doctype html") {
		t.Errorf("ui %d", code)
	}
	if code, body := get(t, base+"/auth/jwks"); code != 200 || !strings.Contains(body, `"Ed25519"`) {
		t.Errorf("jwks %d %s", code, body)
	}

	// /metrics is on the ops listener only; /healthz and /readyz are on both.
	ops := "http://" + a.OpsAddr()
	if code, body := get(t, base+"/metrics"); code != 404 || !strings.Contains(body, `"not_found"`) {
		t.Errorf("public /metrics: %d %.80s, want 404 not_found", code, body)
	}
	if code, _ := get(t, ops+"/healthz"); code != 200 {
		t.Errorf("ops healthz %d", code)
	}
	if code, body := get(t, ops+"/readyz"); code != 200 {
		t.Errorf("ops readyz %d %s", code, body)
	}
	if code, _ := get(t, ops+"/auth/jwks"); code != 404 {
		t.Errorf("ops listener serves the API: /auth/jwks %d", code)
	}

	alice := apitest.SignUp(t, base, "alice")
	bob := apitest.SignUp(t, base, "bob")
	ac, bc := alice.Dial(), bob.Dial()
	ac.Send(map[string]string{"type": "send", "to": bob.ID, "text": "hi bob", "client_msg_id": "m1"})
	ack := ac.Wait(apitest.IsType("ack"), 5*time.Second)
	got := bc.Wait(apitest.IsMessage("message", "m1"), 5*time.Second)
	if ack.Message.Seq == 0 || got.Message.Seq != ack.Message.Seq || got.Message.Text != "hi bob" || got.Message.From != alice.ID {
		t.Fatalf("ack %+v, delivered %+v", ack.Message, got.Message)
	}
	if h := bob.History(alice.ID); len(h) != 1 || h[0].ID != ack.Message.ID {
		t.Fatalf("history %+v", h)
	}

	code, body := get(t, "http://"+a.OpsAddr()+"/metrics")
	for _, m := range []string{"chatd_ws_connections", "chatd_messages_stored_total", "chatd_send_latency_seconds", "go_goroutines"} {
		if code != 200 || !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func TestShutdownClosesSocketsWith1001(t *testing.T) {
	a, base := startAll(t, t.TempDir())
	alice := apitest.SignUp(t, base, "alice")
	c := alice.Dial()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := c.WaitClosed(5 * time.Second); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
}
