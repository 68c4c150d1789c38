package tlsconf

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"

	"github.com/chatd/chatd/internal/testserver"
)

// The Redis cache against a real redis-server: a miss is ErrCacheMiss, a
// put is read back by another client (another gateway), a delete is gone.
func TestRedisCache(t *testing.T) {
	r := testserver.StartRedis(t)
	ctx := context.Background()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	a := NewRedisCache(opt, "chatd:acme:")
	defer a.Close()
	b := NewRedisCache(opt, "chatd:acme:")
	defer b.Close()
	if _, err := a.Get(ctx, "chat.example.org"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("get of a missing entry: %v, want ErrCacheMiss", err)
	}
	if err := a.Put(ctx, "chat.example.org", []byte("pem\x00bytes")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "chat.example.org"); err != nil || string(got) != "pem\x00bytes" {
		t.Fatalf("the other client reads %q, %v", got, err)
	}
	if err := b.Delete(ctx, "chat.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "chat.example.org"); err != nil {
		t.Fatalf("deleting a missing entry: %v", err)
	}
	if _, err := a.Get(ctx, "chat.example.org"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("get after delete: %v, want ErrCacheMiss", err)
	}
	r.Stop()
	if _, err := a.Get(ctx, "chat.example.org"); err == nil || errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("get with the server down: %v, want an error that is not a miss", err)
	}
}

func TestRedirect(t *testing.T) {
	for _, c := range []struct {
		port, method, host, target string
		status                     int
		location                   string
	}{
		{"443", "GET", "chat.example.org", "/c/x?y=1", 301, "https://chat.example.org/c/x?y=1"},
		{"443", "HEAD", "chat.example.org:80", "/", 301, "https://chat.example.org/"},
		{"8443", "GET", "chat.example.org:8080", "/a", 301, "https://chat.example.org:8443/a"},
		{"443", "GET", "[::1]:80", "/", 301, "https://[::1]/"},
		{"8443", "GET", "[::1]", "/", 301, "https://[::1]:8443/"},
		{"443", "GET", "localhost", "/", 301, "https://localhost/"},
		{"443", "POST", "chat.example.org", "/auth/login", 400, ""},
		{"443", "GET", "bad host!", "/", 400, ""},
	} {
		req := httptest.NewRequest(c.method, "http://x"+c.target, nil)
		req.Host = c.host
		w := httptest.NewRecorder()
		redirect(c.port).ServeHTTP(w, req)
		if w.Code != c.status || w.Header().Get("Location") != c.location {
			t.Errorf("%s %s%s (https port %s): %d %q, want %d %q", c.method, c.host, c.target, c.port, w.Code, w.Header().Get("Location"), c.status, c.location)
		}
	}
}

func TestHSTSOnlyOverTLS(t *testing.T) {
	h := HSTS(http.NotFoundHandler(), 365*24*time.Hour)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "https://x/", nil))
	if got := w.Header().Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("over TLS: %q", got)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://x/", nil))
	if got := w.Header().Get("Strict-Transport-Security"); got != "" {
		t.Errorf("over plain HTTP: %q", got)
	}
}
