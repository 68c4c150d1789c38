package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
	"github.com/chatd/chatd/internal/testserver"
)

const acmeDomain = "chat.test"

func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// startACME boots --role=all with ACME from pebble for acmeDomain, HTTPS on
// 127.0.0.1:tlsPort and plain HTTP on 127.0.0.1:httpPort.
func startACME(t *testing.T, pebble *testserver.Pebble, tlsPort, httpPort int, edit func(*Config)) *App {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.HTTP.Addr = "127.0.0.1:" + strconv.Itoa(tlsPort)
	cfg.TLS.ACMEDomains = []string{acmeDomain}
	cfg.TLS.ACMECAURL = pebble.DirectoryURL
	cfg.TLS.ACMECARootFile = pebble.APICAFile
	cfg.TLS.ACMEEmail = "ops@chat.test"
	cfg.TLS.HTTPAddr = "127.0.0.1:" + strconv.Itoa(httpPort)
	return startApp(t, cfg, edit)
}

// acmeClient reaches acmeDomain at addr, trusting only roots.
func acmeClient(addr string, roots *x509.CertPool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
}

// The end-to-end ACME test: against Pebble on loopback, whose DNS
// sends chat.test to 127.0.0.1 and whose validation connects to chatd's
// ports for real, chatd obtains a certificate (TLS-ALPN-01 on its HTTPS
// port, tried first), serves HTTPS and wss:// trusted through Pebble's
// root, and renews before expiry (certificates of 30 s, renewed 24 s before)
// while the sockets opened under the first certificate stay open.
func TestACMEObtainsServesAndRenews(t *testing.T) {
	tlsPort, httpPort := freePort(t), freePort(t)
	pebble := testserver.StartPebble(t, testserver.PebbleOptions{HTTPPort: httpPort, TLSPort: tlsPort, Validity: 30 * time.Second})
	a := startACME(t, pebble, tlsPort, httpPort, func(c *Config) { c.TLS.ACMERenewBefore = 24 * time.Second })
	roots := pebble.IssuerRoots(t)
	base := "https://" + acmeDomain + ":" + strconv.Itoa(tlsPort)

	alice, bob, aliceWS, bobWS := checkHTTPS(t, base, a.PlainAddr(), acmeClient(a.Addr(), roots))
	first := servedSerial(t, a.Addr(), acmeDomain, roots)
	// Pebble logs HTTP-01 attempts only; autocert has no DNS-01: so the
	// certificate came through TLS-ALPN-01 on the HTTPS port.
	if log := pebble.Log(); !strings.Contains(log, "Issued certificate") || strings.Contains(log, "validate w/ HTTP") {
		t.Errorf("want a certificate issued without an HTTP-01 attempt")
	}
	// The account key and the certificate are in <data_dir>/acme, 0700.
	cacheDir := filepath.Join(a.Config().DataDir, "acme")
	if fi, err := os.Stat(cacheDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("ACME cache dir: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(cacheDir, acmeDomain)); err != nil {
		t.Fatalf("no cached certificate: %v", err)
	}

	deadline := time.Now().Add(45 * time.Second)
	for servedSerial(t, a.Addr(), acmeDomain, roots) == first {
		if time.Now().After(deadline) {
			t.Fatal("no renewed certificate served within 45 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The sockets of before the renewal carry messages both ways.
	aliceWS.Send(map[string]string{"type": "send", "to": bob.ID, "text": "after renewal", "client_msg_id": "r1"})
	bobWS.Wait(apitest.IsMessage("message", "r1"), 10*time.Second)
	bobWS.Send(map[string]string{"type": "send", "to": alice.ID, "text": "still here", "client_msg_id": "r2"})
	aliceWS.Wait(apitest.IsMessage("message", "r2"), 10*time.Second)
}

// HTTP-01 on the plain-HTTP listener, when TLS-ALPN-01 cannot succeed
// (Pebble validates it at a port nothing listens on), with the Redis cache:
// a second node on other ports, which Pebble could not validate, serves the
// same certificate from the shared cache without ordering one.
func TestACMEHTTP01AndSharedRedisCache(t *testing.T) {
	redis := testserver.StartRedis(t)
	tlsPort, httpPort, closedPort := freePort(t), freePort(t), freePort(t)
	pebble := testserver.StartPebble(t, testserver.PebbleOptions{HTTPPort: httpPort, TLSPort: closedPort})
	shared := func(c *Config) {
		c.TLS.ACMECache = "redis"
		c.PubSub.RedisURL = redis.URL() // the memory broker stays: only the cache uses it
	}
	a := startACME(t, pebble, tlsPort, httpPort, shared)
	roots := pebble.IssuerRoots(t)
	rt := acmeClient(a.Addr(), roots)
	client := &http.Client{Transport: rt, Timeout: 30 * time.Second}
	resp, err := client.Get("https://" + acmeDomain + ":" + strconv.Itoa(tlsPort) + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS after HTTP-01: %v\npebble: %s", err, pebble.Log())
	}
	resp.Body.Close()
	if !strings.Contains(pebble.Log(), "validate w/ HTTP") {
		t.Errorf("pebble's log shows no HTTP-01 validation")
	}
	first := servedSerial(t, a.Addr(), acmeDomain, roots)

	b := startACME(t, pebble, freePort(t), freePort(t), shared)
	if got := servedSerial(t, b.Addr(), acmeDomain, roots); got != first {
		t.Fatalf("the second node serves serial %s, the first %s: not the shared certificate", got, first)
	}
	if n := strings.Count(pebble.Log(), "Issued certificate"); n != 1 {
		t.Fatalf("pebble issued %d certificates for two nodes with one cache, want 1", n)
	}
}

// Behind one name, the CA's validation may reach another gateway than the
// one that ordered: with the Redis cache, that one answers from the cache.
// Pebble validates only at node B's ports and B reaches no CA; node A
// orders and gets its certificate through B's answers, by TLS-ALPN-01, and
// by HTTP-01 when Pebble's TLS-ALPN-01 port is closed.
func TestACMEChallengeAnsweredByAnotherNode(t *testing.T) {
	redis := testserver.StartRedis(t)
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			bTLS, bHTTP := freePort(t), freePort(t)
			validateTLS := bTLS
			if challenge == "http-01" {
				validateTLS = freePort(t) // nothing listens there
			}
			pebble := testserver.StartPebble(t, testserver.PebbleOptions{HTTPPort: bHTTP, TLSPort: validateTLS})
			shared := func(c *Config) {
				c.TLS.ACMECache = "redis"
				c.PubSub.RedisURL = redis.URL()
				c.PubSub.ChannelPrefix = challenge + ":" // a cache of its own per case
			}
			startACME(t, pebble, bTLS, bHTTP, func(c *Config) {
				shared(c)
				c.TLS.ACMECAURL = "https://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/dir" // no CA there
			})
			a := startACME(t, pebble, freePort(t), freePort(t), shared)
			roots := pebble.IssuerRoots(t)
			deadline := time.Now().Add(30 * time.Second)
			for {
				c, err := tls.Dial("tcp", a.Addr(), &tls.Config{RootCAs: roots, ServerName: acmeDomain})
				if err == nil {
					_ = c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node A got no certificate through node B's answers: %v\npebble: %s", err, pebble.Log())
				}
				time.Sleep(200 * time.Millisecond)
			}
			if tried := strings.Contains(pebble.Log(), "validate w/ HTTP"); tried != (challenge == "http-01") {
				t.Fatalf("HTTP-01 attempted: %v, for %s", tried, challenge)
			}
		})
	}
}
