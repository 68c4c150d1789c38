package ui

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func checkSecurityHeaders(t *testing.T, res *http.Response, host string) {
	t.Helper()
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
		"object-src 'none'", "connect-src 'self' ws://" + host + " wss://" + host,
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", res.Request.URL.Path, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
		t.Errorf("CSP is not strict: %q", csp)
	}
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "same-origin",
		"X-Frame-Options":        "DENY",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", res.Request.URL.Path, k, got, want)
		}
	}
}

func TestIndexAndFallback(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, p := range []string{"/", "/c/some-peer-id", "/settings/x/y", "/index.html"} {
		res, body := get(t, srv, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", p, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", p, cc)
		}
		if !strings.Contains(body, `data-testid="login-username"`) || strings.Contains(body, "%ASSETS%") {
			t.Errorf("GET %s: not the rendered index page", p)
		}
		checkSecurityHeaders(t, res, host)
	}
}

func TestIndexHasNoInlineCode(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	_, body := get(t, srv, http.MethodGet, "/", nil)
	// The CSP forbids inline scripts, styles and handlers: the page must not need them.
	for _, re := range []string{`<script(?:\s[^>]*)?>\s*[^<\s]`, `<style`, `\sstyle=`, `\son[a-z]+=`, `https?://`} {
		if m := regexp.MustCompile(re).FindString(body); m != "" && !strings.Contains(m, "http://www.w3.org") {
			t.Errorf("index.html contains %q (pattern %s)", m, re)
		}
	}
}

func TestAssets(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	_, index := get(t, srv, http.MethodGet, "/", nil)

	// Every asset the page references is served, versioned and immutable.
	refs := regexp.MustCompile(`(?:href|src)="(/assets/v/[0-9a-f]+/[^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 3 {
		t.Fatalf("index references %d versioned assets, want at least 3", len(refs))
	}
	for _, m := range refs {
		res, _ := get(t, srv, http.MethodGet, m[1], nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", m[1], res.StatusCode)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: Cache-Control %q, want immutable", m[1], cc)
		}
	}

	cases := map[string]string{
		"/assets/app.css":           "text/css; charset=utf-8",
		"/assets/js/main.js":        "text/javascript; charset=utf-8",
		"/assets/js/views/chat.js":  "text/javascript; charset=utf-8",
		"/assets/favicon.svg":       "image/svg+xml",
		"/assets/v/0000/js/main.js": "text/javascript; charset=utf-8", // an old version still resolves
	}
	for p, want := range cases {
		res, body := get(t, srv, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", p, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != want {
			t.Errorf("GET %s: Content-Type %q, want %q", p, ct, want)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, cc)
		}
		if len(body) == 0 {
			t.Errorf("GET %s: empty body", p)
		}
		checkSecurityHeaders(t, res, host)

		// Revalidation with the ETag answers 304 without a body.
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", p)
		}
		res2, body2 := get(t, srv, http.MethodGet, p, map[string]string{"If-None-Match": etag})
		if res2.StatusCode != http.StatusNotModified || body2 != "" {
			t.Errorf("GET %s If-None-Match: status %d, %d bytes", p, res2.StatusCode, len(body2))
		}
	}

	// Text assets are served gzipped to clients that accept it.
	raw, plain := get(t, srv, http.MethodGet, "/assets/js/main.js", map[string]string{"Accept-Encoding": "identity"})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/assets/js/main.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	zres, err := srv.Client().Do(req) // the transport decompresses only when it asked itself
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(zres.Body)
	if err != nil {
		t.Fatalf("gzip response: %v", err)
	}
	unz, err := io.ReadAll(zr)
	zres.Body.Close()
	if err != nil || string(unz) != plain || zres.Header.Get("Content-Encoding") != "gzip" ||
		zres.Header.Get("ETag") == raw.Header.Get("ETag") || !strings.Contains(zres.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("gzip variant: err %v, same body %v, headers %v", err, string(unz) == plain, zres.Header)
	}
	if raw.Header.Get("Content-Encoding") != "" {
		t.Errorf("identity request got Content-Encoding %q", raw.Header.Get("Content-Encoding"))
	}

	head, body := get(t, srv, http.MethodHead, "/assets/app.css", nil)
	if head.StatusCode != http.StatusOK || body != "" || head.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: status %d, body %d bytes, length %q", head.StatusCode, len(body), head.Header.Get("Content-Length"))
	}
}

func TestMissingAssetsAndMethods(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, p := range []string{"/assets/nope.js", "/assets/", "/assets/js/", "/assets/v/abc/nope.css", "/assets/../go.mod", "/assets/index.html"} {
		res, body := get(t, srv, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, res.StatusCode)
		}
		if strings.Contains(body, "data-testid") {
			t.Errorf("GET %s: served the page for a missing asset", p)
		}
		checkSecurityHeaders(t, res, host)
	}
	for _, p := range []string{"/api/nope", "/auth/nope", "/ws"} {
		res, body := get(t, srv, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, `"code":"not_found"`) ||
			!strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s: status %d, %q, body %q", p, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	res, _ := get(t, srv, http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: status %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"": false, "gzip": true, "gzip, deflate, br": true, "br;q=1.0, gzip;q=0.8": true,
		"gzip;q=0": false, "identity": false, "x-gzip": false, "GZIP": true,
	} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestHostIsSanitisedInCSP(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "evil.example; script-src *"
	Handler().ServeHTTP(rec, req)
	csp := rec.Header().Get("Content-Security-Policy")
	if strings.Contains(csp, "evil") || !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("CSP with a hostile Host: %q", csp)
	}
}

func BenchmarkServeAsset(b *testing.B) {
	h := Handler()
	req := httptest.NewRequest(http.MethodGet, "/assets/js/main.js", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// The service worker is served at /sw.js, the root, so its scope is the
// whole origin; as a script, revalidated on every check, with the headers
// of every response.
func TestServiceWorker(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	res, body := get(t, srv, http.MethodGet, "/sw.js", nil)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("GET /sw.js: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET /sw.js: Cache-Control %q, want no-cache", cc)
	}
	for _, want := range []string{"addEventListener('push'", "addEventListener('notificationclick'", "showNotification("} {
		if !strings.Contains(body, want) {
			t.Errorf("/sw.js lacks %s", want)
		}
	}
	checkSecurityHeaders(t, res, strings.TrimPrefix(srv.URL, "http://"))
}
