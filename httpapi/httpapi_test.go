package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestWriteErrorShape(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, &Error{Status: 429, Code: "rate_limited", Message: "slow down", RetryAfter: 1500 * time.Millisecond})
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, headers %v", w.Code, w.Header())
	}
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error.Code != "rate_limited" || b.Error.Message != "slow down" {
		t.Fatalf("body %s (%v)", w.Body, err)
	}
}

func TestDecodeJSON(t *testing.T) {
	type in struct {
		Seq int64 `json:"seq"`
	}
	cases := []struct {
		ctype, body string
		status      int
		code        string
	}{
		{"application/json", `{"seq": 3, "unknown": true}`, 0, ""},
		{"application/json; charset=utf-8", `{"seq": 3}`, 0, ""},
		{"text/plain", `{"seq": 3}`, 415, "unsupported_media_type"},
		{"", `{"seq": 3}`, 415, "unsupported_media_type"},
		{"application/json", `{"seq": "three"}`, 400, "invalid_request"},
		{"application/json", `{"seq": 3`, 400, "invalid_request"},
		{"application/json", `{"seq": 3, "pad": "` + strings.Repeat("x", 100) + `"}`, 413, "too_large"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		var v in
		err := DecodeJSON(httptest.NewRecorder(), r, 64, &v)
		switch {
		case c.status == 0 && (err != nil || v.Seq != 3):
			t.Errorf("%q %q: %v, seq %d", c.ctype, c.body, err, v.Seq)
		case c.status != 0 && (err == nil || err.Status != c.status || err.Code != c.code):
			t.Errorf("%q %q: got %v, want %d %s", c.ctype, c.body, err, c.status, c.code)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	req := func(origin, site string) *http.Request {
		r := httptest.NewRequest("POST", "http://chat.example.com/api/messages", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		return r
	}
	cases := []struct {
		origin, site string
		allowed      []string
		want         bool
	}{
		{"http://chat.example.com", "", nil, true},
		{"http://evil.example.com", "", nil, false},
		{"http://chat.example.com:8443", "", nil, false},
		{"null", "", nil, false},
		{"", "same-origin", nil, true},
		{"", "cross-site", nil, false},
		{"", "", nil, false},
		{"https://chat.example.org", "", []string{"https://chat.example.org/"}, true},
		{"http://chat.example.com", "", []string{"https://chat.example.org"}, false},
		{"javascript://chat.example.com", "", nil, false},
		// The scheme and port count, not only the host.
		{"https://chat.example.com", "", nil, false},
		{"http://chat.example.com:80", "", nil, true},
		{"HTTP://Chat.Example.com", "", nil, true},
		{"http://chat.example.org", "", []string{"https://chat.example.org"}, false},
		{"https://chat.example.org", "", []string{"https://chat.example.org:443"}, true},
		{"https://chat.example.org:8443", "", []string{"https://chat.example.org"}, false},
	}
	for _, c := range cases {
		if got := SameOrigin(req(c.origin, c.site), c.allowed); got != c.want {
			t.Errorf("origin %q site %q allowed %v: %v, want %v", c.origin, c.site, c.allowed, got, c.want)
		}
	}
}

// Without public origins, the request's own scheme is X-Forwarded-Proto
// (set by the gateway), else https over TLS, else http.
func TestOriginAllowedOwnScheme(t *testing.T) {
	cases := []struct {
		target, proto, origin string
		want                  bool
	}{
		{"http://h.example/", "", "http://h.example", true},
		{"http://h.example/", "", "https://h.example", false},
		{"http://h.example/", "https", "https://h.example", true},
		{"http://h.example/", "https", "http://h.example", false},
		{"http://h.example/", "HTTPS, http", "https://h.example", true},
		{"https://h.example/", "", "https://h.example", true},
		{"https://h.example/", "", "http://h.example", false},
		{"https://h.example:443/", "", "https://h.example", true},
		{"http://[::1]:8080/", "", "http://[::1]:8080", true},
		{"http://[::1]:8080/", "", "http://[::1]:8081", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", c.target, nil)
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		if got := OriginAllowed(r, c.origin, nil); got != c.want {
			t.Errorf("%s proto %q origin %q: %v, want %v", c.target, c.proto, c.origin, got, c.want)
		}
	}
}

func TestIsUnsafe(t *testing.T) {
	for m, want := range map[string]bool{"GET": false, "HEAD": false, "OPTIONS": false, "POST": true, "DELETE": true, "PUT": true} {
		if IsUnsafe(m) != want {
			t.Errorf("%s: want %v", m, want)
		}
	}
}
