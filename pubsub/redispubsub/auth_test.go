package redispubsub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
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

// testCA is a certificate authority made for one test, with certificates
// for a server on 127.0.0.1 and for a client, as PEM files in dir.
type testCA struct {
	dir                   string
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	otherCAFile           string // a CA that signed nothing here
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	dir := t.TempDir()
	c := testCA{dir: dir}
	caKey, caCert, caDER := makeCA(t, "chatd test CA")
	c.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	_, _, otherDER := makeCA(t, "another CA")
	c.otherCAFile = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherDER)
	c.serverCert, c.serverKey = makeLeaf(t, dir, "server", caKey, caCert, x509.ExtKeyUsageServerAuth)
	c.clientCert, c.clientKey = makeLeaf(t, dir, "client", caKey, caCert, x509.ExtKeyUsageClientAuth)
	return c
}

func makeCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func makeLeaf(t *testing.T, dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", kd)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
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
func startTLSRedis(t *testing.T, ca testCA, authClients string, more ...string) string {
	t.Helper()
	port := freeTCPPort(t)
	testserver.StartRedisWith(t, append([]string{
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", ca.serverCert, "--tls-key-file", ca.serverKey,
		"--tls-ca-cert-file", ca.caFile,
		"--tls-auth-clients", authClients,
	}, more...)...)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// rediss:// with the CA file: the broker works over TLS; without the CA
// (the system's roots) or with another CA the server is not trusted.
func TestTLS(t *testing.T) {
	ca := newTestCA(t)
	const pw = "tls-and-auth"
	addr := startTLSRedis(t, ca, "no", "--requirepass", pw)
	u := "rediss://:" + pw + "@" + addr + "/0"
	roundTrip(t, newBroker(t, redispubsub.Options{URL: u, CAFile: ca.caFile, NodeID: "n1"}))

	for what, opt := range map[string]redispubsub.Options{
		"system roots": {URL: u},
		"another CA":   {URL: u, CAFile: ca.otherCAFile},
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
	if _, err := tryBroker(redispubsub.Options{URL: "redis://" + addr + "/0", CAFile: ca.caFile}); err == nil || !strings.Contains(err.Error(), "rediss://") {
		t.Errorf("a CA file with redis://: %v", err)
	}
}

// A server that requires client certificates takes the broker with its
// certificate and refuses it without.
func TestTLSClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	addr := startTLSRedis(t, ca, "yes")
	u := "rediss://" + addr + "/0"
	roundTrip(t, newBroker(t, redispubsub.Options{URL: u, CAFile: ca.caFile, CertFile: ca.clientCert, KeyFile: ca.clientKey, NodeID: "n1"}))
	if b, err := tryBroker(redispubsub.Options{URL: u, CAFile: ca.caFile}); err == nil {
		_ = b.Close()
		t.Error("connected without a client certificate")
	}
	if _, err := tryBroker(redispubsub.Options{URL: u, CAFile: ca.caFile, CertFile: ca.clientCert}); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("a certificate without its key: %v", err)
	}
}
