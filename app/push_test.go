package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatd/chatd/internal/apitest"
	"github.com/chatd/chatd/pubsub/mempubsub"
	"github.com/chatd/chatd/push"
	"github.com/chatd/chatd/store/sqlitestore"
)

// A process that runs alone creates the VAPID key in its data directory,
// 0600, and serves its public half.
func TestRoleAllCreatesVAPIDKey(t *testing.T) {
	dir := t.TempDir()
	a, base := startAll(t, dir)
	path := filepath.Join(dir, "vapid.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no VAPID key in the data dir: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("vapid.key mode %v, want 0600", fi.Mode().Perm())
	}
	key, err := push.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		PublicKey string `json:"public_key"`
	}
	alice := apitest.SignUp(t, base, "alice")
	r := alice.Do("GET", "/api/push/key", nil)
	r.JSON(t, &out)
	if r.Status != 200 || out.PublicKey != key.PublicKey() {
		t.Fatalf("GET /api/push/key = %d %q, want the key file's %q", r.Status, out.PublicKey, key.PublicKey())
	}
	if _, body := get(t, "http://"+a.OpsAddr()+"/metrics"); !strings.Contains(body, "chatd_push_sent_total") || !strings.Contains(body, "chatd_push_subscriptions_removed_total") {
		t.Error("/metrics lacks the push counters")
	}
}

// Chat replicas (Redis broker) never create a key: with the default path
// missing push is off, with a configured path missing start-up fails, and a
// configured file (as openssl writes it) is used.
func TestReplicaVAPIDKey(t *testing.T) {
	newApp := func(keyFile string) *App {
		cfg := DefaultConfig()
		cfg.Roles = []string{RoleChat}
		cfg.DataDir = t.TempDir()
		cfg.Store.Backend, cfg.Store.MongoURI = "mongo", "mongodb://127.0.0.1:1"
		cfg.PubSub.Backend, cfg.PubSub.RedisURL = "redis", "redis://127.0.0.1:1"
		cfg.Keys.JWKSURL = "http://127.0.0.1:1/auth/jwks"
		cfg.Push.VAPIDKeyFile = keyFile
		a, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := newApp("")
	if svc, err := a.initPush(context.Background()); err != nil || svc != nil || a.pusher != nil {
		t.Fatalf("default key path missing on a replica: %v, %v; want push off", svc, err)
	}
	if _, err := os.Stat(a.cfg.Push.VAPIDKeyFile); err == nil {
		t.Fatal("a replica created a VAPID key")
	}
	missing := filepath.Join(t.TempDir(), "vapid.key")
	if _, err := newApp(missing).initPush(context.Background()); err == nil || !strings.Contains(err.Error(), "push.vapid_key_file") {
		t.Fatalf("configured key missing: %v, want an error naming push.vapid_key_file", err)
	}
	// An openssl-style file: EC PARAMETERS, then EC PRIVATE KEY.
	madePath := filepath.Join(t.TempDir(), "made.key")
	made, err := push.LoadOrCreateKey(madePath)
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(t.TempDir(), "shared.key")
	src, err := os.ReadFile(madePath)
	if err != nil {
		t.Fatal(err)
	}
	params := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	if err := os.WriteFile(shared, append([]byte(params), src...), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newApp(shared)
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "chatd.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b.store, b.presence = st, mempubsub.New() // the backends' stand-ins: initPush only hands them over
	if _, err := b.initPush(context.Background()); err != nil || b.pusher == nil || b.pusher.PublicKey() != made.PublicKey() {
		t.Fatalf("configured key: %v; want push on with that key", err)
	}
}
