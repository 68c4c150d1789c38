package app

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
	"github.com/chatd/chatd/internal/testserver"
)

// mongoOverTLS returns the test server's URI pointed at a TLS relay in
// front of it, with tls=true and tlsCAFile=caFile.
func mongoOverTLS(t *testing.T, m *testserver.Mongo, ca testserver.CA, caFile string) string {
	t.Helper()
	u, err := url.Parse(m.URI())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = testserver.TLSRelay(t, ca, u.Host)
	q := u.Query()
	q.Set("tls", "true")
	q.Set("tlsCAFile", caFile)
	q.Set("serverSelectionTimeoutMS", "3000")
	u.RawQuery = q.Encode()
	return u.String()
}

// chatd reaches both backends over TLS from its configuration alone:
// MongoDB with tls=true&tlsCAFile in store.mongo_uri, Redis with a
// rediss:// pubsub.redis_url (with a password) and pubsub.redis_ca_file. A
// node then serves sign-ups and messages; with a CA that did not sign the
// servers' certificates it does not start.
func TestBackendsOverTLS(t *testing.T) {
	ca := testserver.NewCA(t)
	m := testserver.StartMongo(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	const pw = "redis-tls-pw-4"
	testserver.StartRedisWith(t, "--requirepass", pw, "--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", ca.ServerCert, "--tls-key-file", ca.ServerKey, "--tls-ca-cert-file", ca.CAFile, "--tls-auth-clients", "no")

	config := func(caFile string) Config {
		cfg := DefaultConfig()
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.HTTP.OpsAddr = ""
		cfg.DataDir = t.TempDir()
		cfg.Log.Level = "error"
		cfg.Auth.Argon2.MemoryKiB = 1024
		cfg.Store.Backend = "mongo"
		cfg.Store.MongoURI = mongoOverTLS(t, m, ca, caFile)
		cfg.Store.MongoDatabase = m.Database()
		cfg.PubSub.Backend = "redis"
		cfg.PubSub.RedisURL = "rediss://:" + pw + "@127.0.0.1:" + strconv.Itoa(tlsPort) + "/0"
		cfg.PubSub.RedisCAFile = caFile
		return cfg
	}

	a, err := New(config(ca.CAFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	base := "http://" + a.Addr()
	alice, bob := apitest.SignUp(t, base, "alice"), apitest.SignUp(t, base, "bob")
	bc := bob.Dial()
	if r := alice.Do("POST", "/api/messages", map[string]string{"to": bob.ID, "text": "over tls", "client_msg_id": "t1"}); r.Status != 201 && r.Status != 200 {
		t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	bc.Wait(apitest.IsMessage("message", "t1"), 10*time.Second)

	bad, err := New(config(ca.OtherCAFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if err := bad.Start(ctx2); err == nil {
		_ = bad.Shutdown(context.Background())
		t.Fatal("started with a CA that did not sign the backends' certificates")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted backends: %v", err)
	}
}
