package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/internal/apitest"
	"github.com/chatd/chatd/internal/testserver"
)

func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", file)
	}
	return pool
}

// servedSerial dials addr and returns the serial of the leaf it presents.
func servedSerial(t *testing.T, addr, serverName string, roots *x509.CertPool) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// checkHTTPS checks what TLS on promises at base (https://...) and at the
// plain-HTTP address: HSTS, __Host- Secure cookies, a wss:// socket, the
// redirect of GET and the refusal of POST over plain HTTP. It returns two
// users with open sockets.
func checkHTTPS(t *testing.T, base, plainAddr string, rt http.RoundTripper) (alice, bob *apitest.User, aliceWS, bobWS *apitest.Conn) {
	t.Helper()
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("GET /healthz over HTTPS: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}

	alice = apitest.SignUpOver(t, base, "alice", rt)
	bob = apitest.SignUpOver(t, base, "bob", rt)
	r := alice.Do(http.MethodPost, "/auth/login", map[string]string{"username": "alice", "password": apitest.Password})
	if setCookie := strings.Join(r.Header.Values("Set-Cookie"), "\n"); r.Status != 200 ||
		!strings.Contains(setCookie, "__Host-chatd_session=") || !strings.Contains(setCookie, "; Secure") {
		t.Fatalf("login over HTTPS: %d, Set-Cookie %q", r.Status, setCookie)
	}
	aliceWS, bobWS = alice.Dial(), bob.Dial() // wss://, with the cookie
	aliceWS.Send(map[string]string{"type": "send", "to": bob.ID, "text": "over tls", "client_msg_id": "t1"})
	bobWS.Wait(apitest.IsMessage("message", "t1"), 10*time.Second)

	// Plain HTTP: GET and HEAD are sent to HTTPS, the rest refused.
	_, httpsPort, _ := net.SplitHostPort(strings.TrimPrefix(base, "https://"))
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+plainAddr+"/c/bob?x=1", nil)
	req.Host = "chat.test"
	resp, err = plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://chat.test:" + httpsPort + "/c/bob?x=1"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Fatalf("GET over plain HTTP: %d Location %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, err = plain.Post("http://"+plainAddr+"/auth/login", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var e apitest.Response
	e.Body = make([]byte, 512)
	n, _ := resp.Body.Read(e.Body)
	e.Body = e.Body[:n]
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || e.ErrorCode() != "invalid_request" {
		t.Fatalf("POST over plain HTTP: %d %s, want 400 invalid_request", resp.StatusCode, e.Body)
	}
	return alice, bob, aliceWS, bobWS
}

// TLS from certificate files: HTTPS with HSTS, Secure __Host- cookies and
// wss://, the plain-HTTP redirect, and a certificate replaced on disk served
// from the next handshakes on without a restart, while an open socket goes on.
func TestTLSFromCertificateFiles(t *testing.T) {
	ca := testserver.NewCA(t)
	first := ca.Reissue(t, false)
	roots := caPool(t, ca.CAFile)
	a := startApp(t, testConfig(t.TempDir()), func(cfg *Config) {
		cfg.Auth.CookieSecure = false // TLS on makes them Secure all the same
		cfg.TLS.CertFile, cfg.TLS.KeyFile = ca.ServerCert, ca.ServerKey
		cfg.TLS.HTTPAddr = "127.0.0.1:0"
	})
	rt := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	base := "https://" + a.Addr()
	// Requests may take HTTP/2 (WebSockets keep HTTP/1.1).
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	resp, err := h2.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("an HTTP/2 client got %s", resp.Proto)
	}
	// TLS 1.2 at least.
	if c, err := tls.Dial("tcp", a.Addr(), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		_ = c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	_, bob, aliceWS, _ := checkHTTPS(t, base, a.PlainAddr(), rt)

	if got := servedSerial(t, a.Addr(), "localhost", roots); got != first {
		t.Fatalf("served serial %s, want %s", got, first)
	}
	// Renewed on disk: served once the next check sees the new stamps.
	second := ca.Reissue(t, false)
	deadline := time.Now().Add(15 * time.Second)
	for servedSerial(t, a.Addr(), "localhost", roots) != second {
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate was not served within 15 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A key that does not match the new certificate keeps the last good pair.
	ca.Reissue(t, true)
	time.Sleep(2 * reloadCheck)
	if got := servedSerial(t, a.Addr(), "localhost", roots); got != second {
		t.Fatalf("after a mismatched pair the served serial is %s, want %s", got, second)
	}
	// The socket opened before the change still carries messages.
	bobWS := bob.Dial()
	aliceWS.Send(map[string]string{"type": "send", "to": bob.ID, "text": "after the change", "client_msg_id": "t2"})
	bobWS.Wait(apitest.IsMessage("message", "t2"), 10*time.Second)
}

// reloadCheck is tlsconf's check period (one second), for the negative case.
const reloadCheck = time.Second

// The one command: --tls-domain turns ACME on against Let's
// Encrypt, HTTPS on :443, HTTP-01 and the redirect on :80, Secure cookies;
// an explicit http.addr wins; mistakes name their key.
func TestTLSDomainFlag(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := LoadConfig(flags(t, "--role=all", "--tls-domain=chat.example.org"), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":443" || cfg.TLS.HTTPAddr != ":80" || strings.Join(cfg.TLS.ACMEDomains, ",") != "chat.example.org" ||
		cfg.TLS.ACMECAURL != "https://acme-v02.api.letsencrypt.org/directory" || cfg.TLS.ACMECacheDir != filepath.Join("data", "acme") ||
		!cfg.Auth.CookieSecure {
		t.Fatalf("--tls-domain: %+v, http.addr %q, cookie_secure %v", cfg.TLS, cfg.HTTP.Addr, cfg.Auth.CookieSecure)
	}
	t.Setenv("CHATD_AUTH_COOKIE_SECURE", "false")
	cfg, err = LoadConfig(flags(t, "--tls-domain=a.example.org,b.example.org", "--http-addr=:8443"), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8443" || len(cfg.TLS.ACMEDomains) != 2 || !cfg.Auth.CookieSecure {
		t.Fatalf("explicit http.addr: %q, domains %v, cookie_secure %v", cfg.HTTP.Addr, cfg.TLS.ACMEDomains, cfg.Auth.CookieSecure)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		key  string
	}{
		{[]string{"--tls-domain=*.example.org"}, nil, "tls.acme_domains"},
		{nil, map[string]string{"CHATD_TLS_CERT_FILE": "x.crt"}, "tls.cert_file"},
		{[]string{"--tls-domain=chat.example.org"}, map[string]string{"CHATD_TLS_CERT_FILE": "x.crt", "CHATD_TLS_KEY_FILE": "x.key"}, "tls.acme_domains"},
		{[]string{"--tls-domain=chat.example.org"}, map[string]string{"CHATD_TLS_ACME_CACHE": "redis"}, "tls.acme_cache"},
		{[]string{"--tls-domain=chat.example.org"}, map[string]string{"CHATD_TLS_ACME_CA_URL": "http://ca.test/dir"}, "tls.acme_ca_url"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, err := LoadConfig(flags(t, c.args...), "")
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("args %v env %v: want an error naming %s, got %v", c.args, c.env, c.key, err)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

// Certificate files that do not load stop the start with the key named.
func TestTLSBadFilesStopTheStart(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.OpsAddr = "127.0.0.1:0" // tests run side by side; the default port would collide
	cfg.DataDir = dir
	cfg.Log.Level = "error"
	cfg.TLS.CertFile, cfg.TLS.KeyFile = filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key")
	cfg.TLS.HTTPAddr = "off"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("start with missing files: %v", err)
	}
}

// A chat or gateway process verifies tokens with the keys of an auth role
// that serves its JWKS over TLS from an internal CA (keys.ca_file).
func TestJWKSOverTLSWithCAFile(t *testing.T) {
	dir := t.TempDir()
	key, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ca := testserver.NewCA(t)
	pair, err := tls.LoadX509KeyPair(ca.ServerCert, ca.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(key.JWKS())
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	caFile := ca.CAFile

	cfg := DefaultConfig()
	signed, _, err := token.NewSigner(key, cfg.Auth.Issuer, cfg.Auth.Audience, time.Hour).Sign("u1", "s1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verify := func(caFile string) error {
		a := &App{cfg: cfg, set: resolve([]string{RoleGateway})}
		a.cfg.Keys.JWKSURL = srv.URL + "/auth/jwks"
		a.cfg.Keys.CAFile = caFile
		if _, err := a.initVerifier(context.Background()); err != nil {
			return err
		}
		_, err := a.verifier.Verify(context.Background(), signed)
		return err
	}
	if err := verify(caFile); err != nil {
		t.Fatalf("with keys.ca_file: %v", err)
	}
	if err := verify(""); err == nil {
		t.Fatal("without keys.ca_file a JWKS behind an unknown CA was trusted")
	}
	if err := verify(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "keys.ca_file") {
		t.Fatalf("a missing CA file: %v", err)
	}
}
