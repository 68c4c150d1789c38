package push

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chatd/chatd/pubsub/mempubsub"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/sqlitestore"
)

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "vapid.key")
	if _, err := LoadKey(path); err == nil {
		t.Fatal("LoadKey of a missing file succeeded")
	}
	// Concurrent first starts: one key wins, every caller gets it.
	keys := make([]*Key, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, k := range keys {
		if k.PublicKey() != keys[0].PublicKey() {
			t.Fatal("concurrent LoadOrCreateKey returned different keys")
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	again, err := LoadKey(path)
	if err != nil || again.PublicKey() != keys[0].PublicKey() || again.privateB64 != keys[0].privateB64 {
		t.Fatalf("LoadKey after create: %v", err)
	}
	if n := len(again.PublicKey()); n != 87 { // 65 bytes, base64url without padding
		t.Fatalf("public key is %d characters, want 87", n)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("%d files in the key directory, want only vapid.key (no temporary files left)", len(entries))
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(bad); err == nil {
		t.Fatal("a file without a private key was accepted (or replaced)")
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, c := range []struct {
		endpoint string
		insecure bool
		ok       bool
	}{
		{"https://fcm.googleapis.com/fcm/send/abc", false, true},
		{"https://updates.push.services.mozilla.com/wpush/v2/x", false, true},
		{"https://[2001:4860:4860::8888]/x", false, true},
		{"http://fcm.googleapis.com/x", false, false},
		{"http://127.0.0.1:9/x", true, true},
		{"https://127.0.0.1/x", false, false},
		{"https://[::1]/x", false, false},
		{"https://10.0.0.1/x", false, false},
		{"https://192.168.1.1/x", false, false},
		{"https://169.254.169.254/latest", false, false},
		{"https://100.64.0.1/x", false, false},
		{"https://[::ffff:127.0.0.1]/x", false, false},
		{"https://localhost/x", false, false},
		{"https://metadata.google.internal/x", false, false},
		{"https://user:pw@push.example/x", false, false},
		{"ftp://push.example/x", false, false},
		{"/relative", false, false},
		{"https:opaque", false, false},
		{"", false, false},
	} {
		if err := CheckEndpoint(c.endpoint, c.insecure); (err == nil) != c.ok {
			t.Errorf("CheckEndpoint(%q, insecure=%v) = %v, want ok=%v", c.endpoint, c.insecure, err, c.ok)
		}
	}
}

// The sender's own client refuses to connect to a loopback address even
// when a name leads there (the endpoint check sees only the URL).
func TestClientRefusesPrivateAddresses(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	_, port, _ := splitPort(srv.URL)
	resp, err := newClient(2*time.Second, false).Post("http://localhost:"+port+"/", "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatal("the push client connected to localhost")
	}
	if hit {
		t.Fatal("the loopback server was reached")
	}
}

func splitPort(u string) (string, string, error) {
	r, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return "", "", err
	}
	return r.URL.Hostname(), r.URL.Port(), nil
}

// MessageStored never waits: with a push service that never answers, the
// one worker hangs, the queue fills, and every further message is dropped
// and counted. (Were MessageStored to block, this test would hang.)
func TestMessageStoredNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "chatd.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.AddPushSubscription(ctx, store.PushSubscription{
		Endpoint: srv.URL + "/push/1", UserID: "bob",
		P256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", Auth: "tBHItJI5svbpez7KI4CCXg",
		CreatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Workers, cfg.QueueSize, cfg.AllowInsecureEndpoints, cfg.Subject = 1, 4, true, "mailto:ops@chat.example"
	s, err := New(cfg, Deps{Store: st, Presence: mempubsub.New(), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Stop(ctx) }()
	const n = 200
	for i := range n {
		s.MessageStored(store.Message{ID: "m", ConversationID: "alice.bob", From: "alice", To: "bob", Seq: int64(i + 1), Text: "hi"})
	}
	// At most the queue and the one message the worker holds are not dropped.
	if d := value(t, s.m.dropped); d < n-float64(cfg.QueueSize)-1 {
		t.Fatalf("%v of %d messages dropped, want at least %d", d, n, n-cfg.QueueSize-1)
	}
	// Events other than text are never queued.
	before := value(t, s.m.dropped)
	s.MessageStored(store.Message{Kind: store.KindText + "x", To: "bob"})
	if value(t, s.m.dropped) != before {
		t.Fatal("a non-text message was queued")
	}
	// Nor are messages to a recipient the store knows has no
	// subscriptions (the queue is full: a queued one would be dropped).
	if subs, err := st.PushSubscriptions(ctx, "carol"); err != nil || len(subs) != 0 {
		t.Fatalf("carol's subscriptions = %v, %v", subs, err)
	}
	for i := range n {
		s.MessageStored(store.Message{ID: "m", ConversationID: "alice.carol", From: "alice", To: "carol", Seq: int64(i + 1), Text: "hi"})
	}
	if value(t, s.m.dropped) != before {
		t.Fatalf("messages to a recipient without subscriptions were queued (%v dropped)", value(t, s.m.dropped)-before)
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
