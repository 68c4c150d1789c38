package redispubsub_test

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/pubsub/redispubsub"
)

// roundTrip checks that b delivers a published payload and keeps presence.
func roundTrip(t *testing.T, b *redispubsub.Broker) {
	t.Helper()
	ctx := context.Background()
	in := newInbox()
	if _, err := b.Subscribe(ctx, "auth-topic", in.handle); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := b.Publish(ctx, "auth-topic", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	eventually(t, "delivery", 10*time.Millisecond, func() bool { return in.has("hello") })
	if _, err := b.Connect(ctx, "u1", "n1"); err != nil {
		t.Fatalf("presence connect: %v", err)
	}
	if st, err := b.Lookup(ctx, []string{"u1"}); err != nil || !st["u1"].Online {
		t.Fatalf("presence lookup: %+v %v", st, err)
	}
}

func tryBroker(opt redispubsub.Options) (*redispubsub.Broker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return redispubsub.New(ctx, opt)
}

// refused checks that opt does not connect, with an error that says the
// credentials were refused and never shows the password.
func refused(t *testing.T, what string, opt redispubsub.Options, password string) {
	t.Helper()
	b, err := tryBroker(opt)
	if err == nil {
		_ = b.Close()
		t.Fatalf("%s: connected", what)
	}
	if !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("%s: error does not say the credentials were refused: %v", what, err)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("%s: the error shows the password: %v", what, err)
	}
}

// Redis AUTH (requirepass): the password in the URL lets the broker in; a
// wrong or missing one is refused with a clear error.
func TestRequirePass(t *testing.T) {
	const pw = "s3cret-redis-pass"
	r := testserver.StartRedisWith(t, "--requirepass", pw)
	b := newBroker(t, redispubsub.Options{URL: "redis://:" + pw + "@" + r.Addr() + "/0", NodeID: "n1"})
	roundTrip(t, b)
	refused(t, "wrong password", redispubsub.Options{URL: "redis://:wrong-" + pw + "@" + r.Addr() + "/0"}, "wrong-"+pw)
	refused(t, "no password", redispubsub.Options{URL: r.URL()}, pw)
}

// An ACL user (user:password@) with the default user disabled.
func TestACLUser(t *testing.T) {
	const pw = "acl-pass-7"
	r := testserver.StartRedisWith(t,
		"--user", "default", "off",
		"--user", "chatd", "on", ">"+pw, "~*", "&*", "+@all")
	b := newBroker(t, redispubsub.Options{URL: "redis://chatd:" + url.QueryEscape(pw) + "@" + r.Addr() + "/0", NodeID: "n1"})
	roundTrip(t, b)
	refused(t, "wrong ACL password", redispubsub.Options{URL: "redis://chatd:nope-" + pw + "@" + r.Addr() + "/0"}, "nope-"+pw)
	refused(t, "default user", redispubsub.Options{URL: r.URL()}, pw)
}

// A URL that does not parse is refused without repeating it.
func TestBadURLNotRepeated(t *testing.T) {
	_, err := tryBroker(redispubsub.Options{URL: "redis://user:hunter2-secret@host:notaport/0"})
	if err == nil || strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("bad URL: %v", err)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startTLSRedis runs a redis-server with a TLS port (and its plain port,
// for the harness's readiness check) and returns the TLS address.
func startTLSRedis(t *testing.T, ca testserver.CA, authClients string, more ...string) string {
	t.Helper()
	port := freeTCPPort(t)
	testserver.StartRedisWith(t, append([]string{
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", ca.ServerCert, "--tls-key-file", ca.ServerKey,
		"--tls-ca-cert-file", ca.CAFile,
		"--tls-auth-clients", authClients,
	}, more...)...)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// rediss:// with the CA file: the broker works over TLS; without the CA
// (the system's roots) or with another CA the server is not trusted.
func TestTLS(t *testing.T) {
	ca := testserver.NewCA(t)
	const pw = "tls-and-auth"
	addr := startTLSRedis(t, ca, "no", "--requirepass", pw)
	u := "rediss://:" + pw + "@" + addr + "/0"
	roundTrip(t, newBroker(t, redispubsub.Options{URL: u, CAFile: ca.CAFile, NodeID: "n1"}))

	for what, opt := range map[string]redispubsub.Options{
		"system roots": {URL: u},
		"another CA":   {URL: u, CAFile: ca.OtherCAFile},
	} {
		if b, err := tryBroker(opt); err == nil {
			_ = b.Close()
			t.Errorf("%s: connected to a server it must not trust", what)
		} else if !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), pw) {
			t.Errorf("%s: %v", what, err)
		}
	}
	// Plain redis:// to a TLS port does not connect either.
	if b, err := tryBroker(redispubsub.Options{URL: "redis://:" + pw + "@" + addr + "/0"}); err == nil {
		_ = b.Close()
		t.Error("plain redis:// connected to the TLS port")
	}
	if _, err := tryBroker(redispubsub.Options{URL: "redis://" + addr + "/0", CAFile: ca.CAFile}); err == nil || !strings.Contains(err.Error(), "rediss://") {
		t.Errorf("a CA file with redis://: %v", err)
	}
}

// A server that requires client certificates takes the broker with its
// certificate and refuses it without.
func TestTLSClientCertificate(t *testing.T) {
	ca := testserver.NewCA(t)
	addr := startTLSRedis(t, ca, "yes")
	u := "rediss://" + addr + "/0"
	roundTrip(t, newBroker(t, redispubsub.Options{URL: u, CAFile: ca.CAFile, CertFile: ca.ClientCert, KeyFile: ca.ClientKey, NodeID: "n1"}))
	if b, err := tryBroker(redispubsub.Options{URL: u, CAFile: ca.CAFile}); err == nil {
		_ = b.Close()
		t.Error("connected without a client certificate")
	}
	if _, err := tryBroker(redispubsub.Options{URL: u, CAFile: ca.CAFile, CertFile: ca.ClientCert}); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("a certificate without its key: %v", err)
	}
}
