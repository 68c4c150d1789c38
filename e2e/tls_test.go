package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/internal/testserver"
)

// TestBrowserOverTLSWithACME runs the issue's one command, `chatd serve
// --role=all --tls-domain=chat.test` (with Pebble as the CA, and test
// ports), as a real process: it gets its certificate from Pebble on
// loopback, and two people chat in Chromium over https:// and wss://,
// the UI's socket following the page's scheme; plain http:// sends the
// browser to https://.
func TestBrowserOverTLSWithACME(t *testing.T) {
	chromiumPath(t)
	port := func() int {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		n, _ := strconv.Atoi(p)
		return n
	}
	tlsPort, httpPort := port(), port()
	pebble := testserver.StartPebble(t, testserver.PebbleOptions{HTTPPort: httpPort, TLSPort: tlsPort})
	env := append(slices.Clone(lowArgon),
		"CHATD_TLS_ACME_CA_URL="+pebble.DirectoryURL,
		"CHATD_TLS_ACME_CA_ROOT_FILE="+pebble.APICAFile,
		"CHATD_TLS_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(httpPort))
	n := startNode(t, "tls", env, "--role=all", "--tls-domain=chat.test",
		"--http-addr=127.0.0.1:"+strconv.Itoa(tlsPort), "--data-dir="+t.TempDir())

	// A Go client that trusts only Pebble's root waits for the certificate.
	roots := pebble.IssuerRoots(t)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, n.addr)
		},
	}}
	base := "https://chat.test:" + strconv.Itoa(tlsPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTPS with Pebble's certificate within 30 s (last: %v):\n%s\npebble:\n%s", err, n.logs(), pebble.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	conn, err := tls.Dial("tcp", n.addr, &tls.Config{RootCAs: roots, ServerName: "chat.test"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()

	// Chromium trusts that leaf (it does not know Pebble's root) and sends
	// chat.test to 127.0.0.1.
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	b := startBrowser(t,
		chromedp.Flag("host-resolver-rules", "MAP chat.test 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	alice := b.newPage("alice")
	// Plain HTTP first (before the page has seen HSTS): a redirect to HTTPS.
	alice.do("open over plain HTTP", chromedp.Navigate("http://chat.test:"+strconv.Itoa(httpPort)+"/"),
		chromedp.WaitVisible(tid("login-username")))
	if href := eval[string](alice, `location.href`); href != base+"/" {
		t.Fatalf("http:// landed at %q, want %q", href, base+"/")
	}
	alice.signUp(base, "alice", "Alice")
	bob := b.newPage("bob")
	bob.signUp(base, "bob", "Bob")
	for _, p := range []*page{alice, bob} {
		p.mu.Lock()
		urls := slices.Clone(p.wsURLs)
		p.mu.Unlock()
		if len(urls) == 0 || !slices.ContainsFunc(urls, func(u string) bool { return strings.HasPrefix(u, "wss://chat.test:"+strconv.Itoa(tlsPort)+"/ws") }) ||
			slices.ContainsFunc(urls, func(u string) bool { return strings.HasPrefix(u, "ws://") }) {
			t.Fatalf("[%s] WebSockets %v, want wss://chat.test:%d/ws only", p.name, urls, tlsPort)
		}
	}
	alice.openWith("bob")
	alice.send("hello over tls")
	bob.openWith("alice")
	bob.waitBubble("hello over tls")
	bob.send("and back")
	alice.waitBubble("and back")
	alice.noErrorToasts()
	bob.noErrorToasts()
}
