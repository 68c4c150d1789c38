package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/mempubsub"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/sqlitestore"
)

// harness is an auth Service over a real SQLite file and an in-process
// broker, behind an httptest server.
type harness struct {
	t       *testing.T
	cfg     Config
	svc     *Service
	store   *sqlitestore.Store
	broker  *mempubsub.Broker
	key     *token.SigningKey
	reg     *prometheus.Registry
	srv     *httptest.Server
	revoked chan string
	offset  atomic.Int64 // added to the service's clock
	logs    *logBuffer
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Argon2 = testArgon2
	if mod != nil {
		mod(&cfg)
	}
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "chatd.db"), sqlitestore.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	br := mempubsub.New()
	t.Cleanup(func() { _ = br.Close() })
	key, err := token.LoadOrCreateKey(filepath.Join(t.TempDir(), "keys", "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, store: st, broker: br, key: key, reg: prometheus.NewRegistry(),
		revoked: make(chan string, 100), logs: &logBuffer{}}
	svc, err := New(cfg, Deps{Store: st, Broker: br, Keys: key, Metrics: h.reg,
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	svc.now = func() time.Time { return time.Now().Add(time.Duration(h.offset.Load())) }
	h.svc = svc
	sub, err := br.Subscribe(context.Background(), pubsub.TopicRevocations, func(p []byte) {
		select {
		case h.revoked <- string(p):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Unsubscribe)
	mux := http.NewServeMux()
	svc.Routes(mux)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// logBuffer collects log output written from handler goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

type reqOpt func(*http.Request)

func withCookies(cs ...*http.Cookie) reqOpt {
	return func(r *http.Request) {
		for _, c := range cs {
			if c != nil {
				r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			}
		}
	}
}

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// sameOrigin adds the Origin a browser sends from the server's own page.
func (h *harness) sameOrigin() reqOpt { return withHeader("Origin", h.srv.URL) }

type response struct {
	*http.Response
	body []byte
}

func (r response) cookie(name string) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (r response) errCode() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r response) user() httpapi.User {
	var u userResponse
	_ = json.Unmarshal(r.body, &u)
	return u.User
}

func (h *harness) do(method, path, body string, opts ...reqOpt) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp, data}
}

func (h *harness) post(path, body string, opts ...reqOpt) response {
	h.t.Helper()
	return h.do(http.MethodPost, path, body, opts...)
}

func creds(user, pass string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return string(b)
}

// signup creates an account and returns the response with its cookies.
func (h *harness) signup(user, pass string) response {
	h.t.Helper()
	r := h.post("/auth/signup", creds(user, pass), h.sameOrigin())
	if r.StatusCode != http.StatusCreated {
		h.t.Fatalf("signup %s: %d %s", user, r.StatusCode, r.body)
	}
	return r
}

func (h *harness) expectRevocation(sid string) {
	h.t.Helper()
	select {
	case got := <-h.revoked:
		if got != sid {
			h.t.Fatalf("revocation of %q published, want %q", got, sid)
		}
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no revocation of %q published", sid)
	}
}

func (h *harness) expectNoRevocation() {
	h.t.Helper()
	select {
	case got := <-h.revoked:
		h.t.Fatalf("unexpected revocation of %q", got)
	default:
	}
}

func (h *harness) claims(access *http.Cookie) token.Claims {
	h.t.Helper()
	c, err := h.svc.Verifier().Verify(context.Background(), access.Value)
	if err != nil {
		h.t.Fatalf("access cookie does not verify: %v", err)
	}
	return c
}

func checkSessionCookies(t *testing.T, r response, cfg Config) (access, refresh *http.Cookie) {
	t.Helper()
	access, refresh = r.cookie(token.SessionCookieName(cfg.CookieSecure)), r.cookie(token.RefreshCookie)
	if access == nil || refresh == nil {
		t.Fatalf("cookies missing: %v", r.Header.Values("Set-Cookie"))
	}
	if !access.HttpOnly || access.Secure != cfg.CookieSecure || access.SameSite != http.SameSiteLaxMode ||
		access.Path != "/" || access.MaxAge != int(cfg.AccessTTL/time.Second) || access.Value == "" {
		t.Errorf("access cookie attributes: %s", access.String())
	}
	if !refresh.HttpOnly || refresh.Secure != cfg.CookieSecure || refresh.SameSite != http.SameSiteStrictMode ||
		refresh.Path != "/auth" || refresh.MaxAge != int(cfg.RefreshTTL/time.Second) || refresh.Value == "" {
		t.Errorf("refresh cookie attributes: %s", refresh.String())
	}
	return access, refresh
}

func checkClearedCookies(t *testing.T, r response) {
	t.Helper()
	for name, path := range map[string]string{token.SessionCookie: "/", token.RefreshCookie: "/auth"} {
		c := r.cookie(name)
		if c == nil {
			t.Errorf("cookie %s not cleared: %v", name, r.Header.Values("Set-Cookie"))
			continue
		}
		// MaxAge -1 is what net/http reports for "Max-Age=0".
		if c.MaxAge != -1 || c.Path != path || c.Value != "" {
			t.Errorf("cookie %s not cleared properly: %s", name, c.String())
		}
	}
}

func TestSignupLoginMe(t *testing.T) {
	h := newHarness(t, nil)
	r := h.post("/auth/signup", `{"username":"Alice","password":"correct-horse-1","display_name":"  Alice A. "}`, h.sameOrigin())
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("signup: %d %s", r.StatusCode, r.body)
	}
	u := r.user()
	if u.ID == "" || u.Username != "alice" || u.DisplayName != "Alice A." {
		t.Fatalf("signup user = %+v", u)
	}
	if !strings.Contains(string(r.body), `"display_name":"Alice A."`) {
		t.Errorf("body %s", r.body)
	}
	access, _ := checkSessionCookies(t, r, h.cfg)
	c := h.claims(access)
	if c.UserID != u.ID || c.SessionID == "" {
		t.Fatalf("claims %+v", c)
	}
	sess, err := h.store.SessionByID(context.Background(), c.SessionID)
	if err != nil || sess.UserID != u.ID || len(sess.RefreshHash) != 64 || sess.Revoked() {
		t.Fatalf("stored session %+v %v", sess, err)
	}
	stored, _ := h.store.UserByID(context.Background(), u.ID)
	if !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("stored hash %q", stored.PasswordHash)
	}

	// /auth/me by cookie and by bearer.
	if r := h.do(http.MethodGet, "/auth/me", "", withCookies(access)); r.StatusCode != 200 || r.user() != u {
		t.Fatalf("me by cookie: %d %s", r.StatusCode, r.body)
	}
	if r := h.do(http.MethodGet, "/auth/me", "", withHeader("Authorization", "Bearer "+access.Value)); r.StatusCode != 200 || r.user() != u {
		t.Fatalf("me by bearer: %d %s", r.StatusCode, r.body)
	}
	if r := h.do(http.MethodGet, "/auth/me", ""); r.StatusCode != 401 || r.errCode() != "unauthenticated" {
		t.Fatalf("me without token: %d %s", r.StatusCode, r.body)
	}
	if r := h.do(http.MethodGet, "/auth/me", "", withHeader("Authorization", "Bearer garbage")); r.StatusCode != 401 {
		t.Fatalf("me with garbage: %d %s", r.StatusCode, r.body)
	}

	// Login folds the case; a new session each time.
	r = h.post("/auth/login", creds("ALICE", "correct-horse-1"), h.sameOrigin())
	if r.StatusCode != 200 || r.user() != u {
		t.Fatalf("login: %d %s", r.StatusCode, r.body)
	}
	access2, _ := checkSessionCookies(t, r, h.cfg)
	if c2 := h.claims(access2); c2.SessionID == c.SessionID || c2.UserID != u.ID {
		t.Fatalf("login session %+v vs signup %+v", c2, c)
	}
	// A login without Origin (a non-browser client) is fine too.
	if r := h.post("/auth/login", creds("alice", "correct-horse-1")); r.StatusCode != 200 {
		t.Fatalf("login without Origin: %d %s", r.StatusCode, r.body)
	}

	if got := counterValue(t, h.svc.m.signups); got != 1 {
		t.Errorf("signups metric = %v", got)
	}
	if got := counterValue(t, h.svc.m.logins.WithLabelValues("success")); got != 2 {
		t.Errorf("logins{success} = %v", got)
	}
	mfs, err := h.reg.Gather()
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	if err != nil || !names["chatd_auth_signups_total"] || !names["chatd_auth_logins_total"] {
		t.Errorf("metrics not registered: %v %v", names, err)
	}
	if strings.Contains(h.logs.String(), "correct-horse-1") || strings.Contains(h.logs.String(), access.Value) {
		t.Error("a secret reached the log")
	}
}

func TestCookieSecureOff(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CookieSecure = false; c.AccessTTL = 10 * time.Minute; c.RefreshTTL = 48 * time.Hour })
	r := h.signup("bob", "correct-horse-1")
	checkSessionCookies(t, r, h.cfg)
	for _, sc := range r.Header.Values("Set-Cookie") {
		if strings.Contains(sc, "; Secure") {
			t.Errorf("Secure set although off: %s", sc)
		}
	}
}

func TestSignupValidation(t *testing.T) {
	h := newHarness(t, nil)
	long := strings.Repeat("x", 33)
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"short username", creds("ab", "correct-horse-1"), 400, "invalid_username"},
		{"long username", creds(long, "correct-horse-1"), 400, "invalid_username"},
		{"space in username", creds("al ice", "correct-horse-1"), 400, "invalid_username"},
		{"unicode username", creds("ålice", "correct-horse-1"), 400, "invalid_username"},
		{"kelvin sign", creds("\u212Aelvin", "correct-horse-1"), 400, "invalid_username"},
		{"missing username", `{"password":"correct-horse-1"}`, 400, "invalid_username"},
		{"short password", creds("carol", "1234567"), 400, "weak_password"},
		{"long password", creds("carol", strings.Repeat("p", 257)), 400, "weak_password"},
		{"display name too long", `{"username":"carol","password":"correct-horse-1","display_name":"` + strings.Repeat("é", 65) + `"}`, 400, "invalid_request"},
		{"display name control char", `{"username":"carol","password":"correct-horse-1","display_name":"a\u0007b"}`, 400, "invalid_request"},
		{"display name newline", `{"username":"carol","password":"correct-horse-1","display_name":"a\nb"}`, 400, "invalid_request"},
		{"display name bidi override", `{"username":"carol","password":"correct-horse-1","display_name":"a\u202Eb"}`, 400, "invalid_request"},
		{"malformed JSON", `{"username":`, 400, "invalid_request"},
		{"wrong type", `{"username":1,"password":"correct-horse-1"}`, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/auth/signup", tc.body, h.sameOrigin())
			if r.StatusCode != tc.status || r.errCode() != tc.code {
				t.Fatalf("%d %s, want %d %s", r.StatusCode, r.body, tc.status, tc.code)
			}
			if r.cookie(token.SessionCookie) != nil {
				t.Error("cookie set on a failed signup")
			}
		})
	}

	// Limits pass at the edges; unknown fields are ignored; 10 and 256
	// characters (not bytes) of password.
	ok := []string{
		`{"username":"abc","password":"Zq8#vLx2p!","extra":true}`,
		`{"username":"` + strings.Repeat("a", 32) + `","password":"` + strings.Repeat("é", 256) + `"}`,
		`{"username":"a_b.c-d9","password":"ééééééééé\u00e9","display_name":"` + strings.Repeat("ß", 64) + `"}`,
	}
	for _, body := range ok {
		if r := h.post("/auth/signup", body, h.sameOrigin()); r.StatusCode != 201 {
			t.Errorf("%s: %d %s", body, r.StatusCode, r.body)
		}
	}
	// Display name defaults to the username (also when blank).
	if u := h.post("/auth/signup", `{"username":"Dave","password":"correct-horse-1","display_name":"   "}`).user(); u.DisplayName != "Dave" || u.Username != "dave" {
		t.Errorf("blank display name → %q", u.DisplayName)
	}

	// Taken, whatever the case.
	h.signup("erin", "correct-horse-1")
	for _, name := range []string{"erin", "ERIN", "Erin"} {
		r := h.post("/auth/signup", creds(name, "correct-horse-2"), h.sameOrigin())
		if r.StatusCode != 409 || r.errCode() != "username_taken" {
			t.Errorf("signup %s again: %d %s", name, r.StatusCode, r.body)
		}
	}

	// Content type, size, origin.
	r := h.do(http.MethodPost, "/auth/signup", "", withHeader("Content-Type", "text/plain"))
	if r.StatusCode != 415 || r.errCode() != "unsupported_media_type" {
		t.Errorf("text/plain: %d %s", r.StatusCode, r.body)
	}
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/auth/signup", strings.NewReader(creds("frank", "correct-horse-1")))
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("no content type: %d", resp.StatusCode)
	}
	big := `{"username":"frank","password":"correct-horse-1","display_name":"` + strings.Repeat("x", 70<<10) + `"}`
	if r := h.post("/auth/signup", big, h.sameOrigin()); r.StatusCode != 413 || r.errCode() != "too_large" {
		t.Errorf("big body: %d %s", r.StatusCode, r.body)
	}
	for _, origin := range []string{"https://evil.example", "null"} {
		if r := h.post("/auth/signup", creds("frank", "correct-horse-1"), withHeader("Origin", origin)); r.StatusCode != 403 || r.errCode() != "forbidden" {
			t.Errorf("origin %s: %d %s", origin, r.StatusCode, r.body)
		}
	}
	if _, err := h.store.UserByUsername(context.Background(), "frank"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused signup created the user: %v", err)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	h := newHarness(t, nil)
	h.signup("alice", "correct-horse-1")
	wrong := h.post("/auth/login", creds("alice", "correct-horse-2"), h.sameOrigin())
	unknown := h.post("/auth/login", creds("nobody", "correct-horse-2"), h.sameOrigin())
	for _, r := range []response{wrong, unknown} {
		if r.StatusCode != 401 || r.errCode() != "invalid_credentials" || r.cookie(token.SessionCookie) != nil {
			t.Fatalf("%d %s", r.StatusCode, r.body)
		}
	}
	if !bytes.Equal(wrong.body, unknown.body) {
		t.Errorf("bodies differ:\n%s\n%s", wrong.body, unknown.body)
	}
	if wrong.Header.Get("Content-Type") != unknown.Header.Get("Content-Type") {
		t.Error("headers differ")
	}
	// The same for /auth/token.
	tw := h.post("/auth/token", creds("alice", "correct-horse-2"))
	tu := h.post("/auth/token", creds("nobody", "correct-horse-2"))
	if tw.StatusCode != 401 || !bytes.Equal(tw.body, tu.body) || !bytes.Equal(tw.body, wrong.body) {
		t.Errorf("token failures: %d %s / %d %s", tw.StatusCode, tw.body, tu.StatusCode, tu.body)
	}
	// Foreign origin: login CSRF refused before anything else.
	if r := h.post("/auth/login", creds("alice", "correct-horse-1"), withHeader("Origin", "https://evil.example")); r.StatusCode != 403 {
		t.Errorf("foreign origin login: %d %s", r.StatusCode, r.body)
	}
}

func TestLoginRateLimit(t *testing.T) {
	h := newHarness(t, nil)
	h.signup("alice", "correct-horse-1")
	h.signup("bob", "correct-horse-1")
	for i := range 10 {
		if r := h.post("/auth/login", creds("alice", "wrong-"+strconv.Itoa(i))); r.StatusCode != 401 {
			t.Fatalf("failure %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	for _, pass := range []string{"wrong", "correct-horse-1"} {
		r := h.post("/auth/login", creds("Alice", pass))
		if r.StatusCode != 429 || r.errCode() != "rate_limited" {
			t.Fatalf("11th attempt (%s): %d %s", pass, r.StatusCode, r.body)
		}
		secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 15*60 {
			t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
		}
	}
	if r := h.post("/auth/token", creds("alice", "correct-horse-1")); r.StatusCode != 429 {
		t.Fatalf("token while limited: %d", r.StatusCode)
	}
	// Other accounts are not affected.
	if r := h.post("/auth/login", creds("bob", "correct-horse-1")); r.StatusCode != 200 {
		t.Fatalf("bob: %d %s", r.StatusCode, r.body)
	}
	// Unknown accounts are limited just the same (no way to tell them apart).
	for range 10 {
		h.post("/auth/login", creds("ghost", "correct-horse-1"))
	}
	if r := h.post("/auth/login", creds("ghost", "correct-horse-1")); r.StatusCode != 429 {
		t.Fatalf("unknown account not limited: %d", r.StatusCode)
	}
	if got := counterValue(t, h.svc.m.logins.WithLabelValues("rate_limited")); got < 4 {
		t.Errorf("logins{rate_limited} = %v", got)
	}

	// A success resets the count.
	h.signup("carol", "correct-horse-1")
	for range 9 {
		h.post("/auth/login", creds("carol", "wrong"))
	}
	if r := h.post("/auth/login", creds("carol", "correct-horse-1")); r.StatusCode != 200 {
		t.Fatalf("carol's 10th attempt: %d", r.StatusCode)
	}
	for i := range 10 {
		if r := h.post("/auth/login", creds("carol", "wrong")); r.StatusCode != 401 {
			t.Fatalf("carol's failure %d after a success: %d", i, r.StatusCode)
		}
	}
	if r := h.post("/auth/login", creds("carol", "correct-horse-1")); r.StatusCode != 429 {
		t.Fatalf("carol after 10 new failures: %d", r.StatusCode)
	}
}

func TestRefreshRotatesAndReuseRevokes(t *testing.T) {
	h := newHarness(t, nil)
	r := h.signup("alice", "correct-horse-1")
	access0, refresh0 := checkSessionCookies(t, r, h.cfg)
	sid := h.claims(access0).SessionID

	r = h.post("/auth/refresh", "", withCookies(refresh0), h.sameOrigin())
	if r.StatusCode != 200 || r.user().Username != "alice" {
		t.Fatalf("refresh: %d %s", r.StatusCode, r.body)
	}
	access1, refresh1 := checkSessionCookies(t, r, h.cfg)
	if refresh1.Value == refresh0.Value || access1.Value == access0.Value {
		t.Fatal("refresh did not rotate")
	}
	if !strings.HasPrefix(refresh1.Value, sid+".") || h.claims(access1).SessionID != sid {
		t.Fatal("refresh left the session")
	}
	sess, _ := h.store.SessionByID(context.Background(), sid)
	if sess.RefreshHash != hashToken(refresh1.Value) || sess.PrevRefreshHash != hashToken(refresh0.Value) {
		t.Fatalf("stored hashes do not follow the rotation: %+v", sess)
	}
	// The new refresh token rotates again.
	r = h.post("/auth/refresh", "", withCookies(refresh1), withHeader("Sec-Fetch-Site", "same-origin"))
	if r.StatusCode != 200 {
		t.Fatalf("second refresh: %d %s", r.StatusCode, r.body)
	}
	access2, refresh2 := checkSessionCookies(t, r, h.cfg)
	if r := h.do(http.MethodGet, "/auth/me", "", withCookies(access2)); r.StatusCode != 200 {
		t.Fatalf("me: %d", r.StatusCode)
	}
	h.expectNoRevocation()

	// Replaying the rotated refresh1 once the concurrent-refresh grace is
	// over: 401, cookies cleared, session revoked and announced.
	h.offset.Add(int64(h.cfg.RefreshGrace + time.Second))
	r = h.post("/auth/refresh", "", withCookies(refresh1), h.sameOrigin())
	if r.StatusCode != 401 || r.errCode() != "unauthenticated" {
		t.Fatalf("reuse: %d %s", r.StatusCode, r.body)
	}
	checkClearedCookies(t, r)
	h.expectRevocation(sid)
	if sess, _ := h.store.SessionByID(context.Background(), sid); !sess.Revoked() {
		t.Fatal("session not revoked in the store")
	}
	// Everything of that session is dead now.
	for _, a := range []*http.Cookie{access0, access1, access2} {
		if r := h.do(http.MethodGet, "/auth/me", "", withCookies(a)); r.StatusCode != 401 {
			t.Fatalf("me after reuse: %d", r.StatusCode)
		}
	}
	if r := h.post("/auth/refresh", "", withCookies(refresh2), h.sameOrigin()); r.StatusCode != 401 {
		t.Fatalf("current refresh token after reuse: %d", r.StatusCode)
	}
	if got := counterValue(t, h.svc.m.refreshes.WithLabelValues("reused")); got != 1 {
		t.Errorf("refreshes{reused} = %v", got)
	}
}

func TestRefreshFailures(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PublicOrigins = []string{"https://chat.example.com"} })
	r := h.signup2("alice")
	_, refresh := checkSessionCookies(t, r, h.cfg)
	origin := withHeader("Origin", "https://chat.example.com")

	// Same-origin is required (a cookie-authenticated unsafe request).
	for _, opt := range []reqOpt{
		func(*http.Request) {},
		withHeader("Origin", h.srv.URL), // not a configured public origin
		withHeader("Origin", "https://evil.example"),
		withHeader("Sec-Fetch-Site", "cross-site"),
	} {
		if r := h.post("/auth/refresh", "", withCookies(refresh), opt); r.StatusCode != 403 || r.errCode() != "forbidden" {
			t.Fatalf("cross-origin refresh: %d %s", r.StatusCode, r.body)
		}
	}
	// No cookie, garbage, an unknown session, a wrong secret: 401 with
	// cookies cleared, and the real session untouched.
	for _, c := range []*http.Cookie{
		nil,
		{Name: token.RefreshCookie, Value: "garbage"},
		{Name: token.RefreshCookie, Value: "nosuchsession." + randomSecret()},
		{Name: token.RefreshCookie, Value: strings.SplitN(refresh.Value, ".", 2)[0] + "." + randomSecret()},
	} {
		r := h.post("/auth/refresh", "", withCookies(c), origin)
		if r.StatusCode != 401 {
			t.Fatalf("refresh with %v: %d %s", c, r.StatusCode, r.body)
		}
		checkClearedCookies(t, r)
	}
	h.expectNoRevocation()
	if r := h.post("/auth/refresh", "", withCookies(refresh), origin); r.StatusCode != 200 {
		t.Fatalf("good refresh: %d %s", r.StatusCode, r.body)
	}

	// An expired session.
	h2 := newHarness(t, nil)
	r = h2.signup("bob", "correct-horse-1")
	access, refresh := checkSessionCookies(t, r, h2.cfg)
	sid := h2.claims(access).SessionID
	h2.offset.Store(int64(h2.cfg.RefreshTTL + time.Minute))
	if r := h2.post("/auth/refresh", "", withCookies(refresh), h2.sameOrigin()); r.StatusCode != 401 {
		t.Fatalf("expired refresh: %d %s", r.StatusCode, r.body)
	}
	if sess, _ := h2.store.SessionByID(context.Background(), sid); sess.Revoked() {
		t.Error("an expired token revoked its session")
	}
}

// signup2 signs up with the configured public origin.
func (h *harness) signup2(user string) response {
	h.t.Helper()
	r := h.post("/auth/signup", creds(user, "correct-horse-1"), withHeader("Origin", h.cfg.PublicOrigins[0]))
	if r.StatusCode != 201 {
		h.t.Fatalf("signup: %d %s", r.StatusCode, r.body)
	}
	return r
}

func TestLogout(t *testing.T) {
	h := newHarness(t, nil)

	// By cookies.
	access, refresh := checkSessionCookies(t, h.signup("alice", "correct-horse-1"), h.cfg)
	sid := h.claims(access).SessionID
	if r := h.post("/auth/logout", "", withCookies(access, refresh), withHeader("Origin", "https://evil.example")); r.StatusCode != 403 {
		t.Fatalf("cross-origin logout: %d", r.StatusCode)
	}
	if r := h.post("/auth/logout", "", withCookies(access, refresh)); r.StatusCode != 403 {
		t.Fatalf("logout without Origin: %d", r.StatusCode)
	}
	h.expectNoRevocation()
	r := h.post("/auth/logout", "", withCookies(access, refresh), h.sameOrigin())
	if r.StatusCode != 204 || len(r.body) != 0 {
		t.Fatalf("logout: %d %s", r.StatusCode, r.body)
	}
	checkClearedCookies(t, r)
	h.expectRevocation(sid)
	if r := h.do(http.MethodGet, "/auth/me", "", withCookies(access)); r.StatusCode != 401 {
		t.Fatalf("me after logout: %d", r.StatusCode)
	}
	if r := h.do(http.MethodGet, "/auth/me", "", withHeader("Authorization", "Bearer "+access.Value)); r.StatusCode != 401 {
		t.Fatalf("bearer me after logout: %d", r.StatusCode)
	}
	if r := h.post("/auth/refresh", "", withCookies(refresh), h.sameOrigin()); r.StatusCode != 401 {
		t.Fatalf("refresh after logout: %d", r.StatusCode)
	}
	h.expectNoRevocation() // a revoked session's refresh token is not a reuse

	// By the refresh cookie alone (the access cookie expired).
	access, refresh = checkSessionCookies(t, h.post("/auth/login", creds("alice", "correct-horse-1")), h.cfg)
	sid = h.claims(access).SessionID
	if r := h.post("/auth/logout", "", withCookies(refresh), h.sameOrigin()); r.StatusCode != 204 {
		t.Fatalf("logout by refresh cookie: %d", r.StatusCode)
	}
	h.expectRevocation(sid)

	// By bearer token (no Origin needed: not cookie-authenticated).
	tok := h.token("alice", "correct-horse-1")
	c, err := h.svc.Verifier().Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.post("/auth/logout", "", withHeader("Authorization", "Bearer "+tok)); r.StatusCode != 204 {
		t.Fatalf("logout by bearer: %d", r.StatusCode)
	}
	h.expectRevocation(c.SessionID)
	if r := h.do(http.MethodGet, "/auth/me", "", withHeader("Authorization", "Bearer "+tok)); r.StatusCode != 401 {
		t.Fatalf("bearer me after logout: %d", r.StatusCode)
	}

	// Without any session: cookies cleared, 204, nothing published.
	r = h.post("/auth/logout", "")
	if r.StatusCode != 204 {
		t.Fatalf("logout without session: %d", r.StatusCode)
	}
	checkClearedCookies(t, r)
	r = h.post("/auth/logout", "", withCookies(&http.Cookie{Name: token.SessionCookie, Value: "junk"}), h.sameOrigin())
	if r.StatusCode != 204 {
		t.Fatalf("logout with junk cookie: %d", r.StatusCode)
	}
	h.expectNoRevocation()
	if got := counterValue(t, h.svc.m.revocations.WithLabelValues("logout")); got != 3 {
		t.Errorf("revocations{logout} = %v", got)
	}
}

// token gets a bearer token from /auth/token.
func (h *harness) token(user, pass string) string {
	h.t.Helper()
	r := h.post("/auth/token", creds(user, pass))
	if r.StatusCode != 200 {
		h.t.Fatalf("token: %d %s", r.StatusCode, r.body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		h.t.Fatal(err)
	}
	return tr.Token
}

func TestToken(t *testing.T) {
	h := newHarness(t, nil)
	u := h.signup("alice", "correct-horse-1").user()
	r := h.post("/auth/token", creds("Alice", "correct-horse-1"))
	if r.StatusCode != 200 {
		t.Fatalf("token: %d %s", r.StatusCode, r.body)
	}
	if len(r.Cookies()) != 0 {
		t.Errorf("token set cookies: %v", r.Header.Values("Set-Cookie"))
	}
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.User != httpapi.NewUser(u.ID, "alice", "alice") {
		t.Errorf("user = %+v", tr.User)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(tr.ExpiresAt) {
		t.Errorf("expires_at = %q", tr.ExpiresAt)
	}
	exp, _ := time.Parse(time.RFC3339Nano, tr.ExpiresAt)
	c, err := token.NewVerifier(h.key.KeySet(), "chatd", "chatd").Verify(context.Background(), tr.Token)
	if err != nil || c.UserID != u.ID || !c.ExpiresAt.Equal(exp) {
		t.Fatalf("token claims %+v (%v), expires_at %v", c, err, exp)
	}
	if d := time.Until(exp); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("token lives %v, want about 1h", d)
	}
	sess, err := h.store.SessionByID(context.Background(), c.SessionID)
	if err != nil || sess.UserID != u.ID || len(sess.RefreshHash) != 64 {
		t.Fatalf("token session %+v %v", sess, err)
	}
	if r := h.do(http.MethodGet, "/auth/me", "", withHeader("Authorization", "Bearer "+tr.Token)); r.StatusCode != 200 || r.user().ID != u.ID {
		t.Fatalf("me by bearer: %d %s", r.StatusCode, r.body)
	}
	if r := h.post("/auth/token", creds("alice", "correct-horse-1"), withHeader("Origin", "https://evil.example")); r.StatusCode != 403 {
		t.Errorf("foreign origin token: %d", r.StatusCode)
	}
}

func TestJWKSEndpointAndMethods(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do(http.MethodGet, "/auth/jwks", "")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("jwks: %d %v", r.StatusCode, r.Header)
	}
	keys, err := token.ParseJWKS(r.body)
	if err != nil || !keys[h.key.ID].Equal(h.key.Public()) {
		t.Fatalf("jwks %s: %v", r.body, err)
	}
	// A gateway verifying through the remote set accepts the auth role's tokens.
	tok := h.token2(t)
	v := token.NewVerifier(token.NewRemoteKeySet(h.srv.URL+"/auth/jwks", nil, time.Minute), "chatd", "chatd")
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("remote verify: %v", err)
	}

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/auth/login"}, {http.MethodGet, "/auth/logout"}, {http.MethodPut, "/auth/signup"},
		{http.MethodPost, "/auth/me"}, {http.MethodDelete, "/auth/jwks"},
	} {
		r := h.do(c.method, c.path, "")
		if r.StatusCode != 405 || r.errCode() != "method_not_allowed" || r.Header.Get("Allow") == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.StatusCode, r.body)
		}
	}
}

func (h *harness) token2(t *testing.T) string {
	h.signup("zed", "correct-horse-1")
	return h.token("zed", "correct-horse-1")
}

func TestStoreDownIs503(t *testing.T) {
	h := newHarness(t, nil)
	access, refresh := checkSessionCookies(t, h.signup("alice", "correct-horse-1"), h.cfg)
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, body string
		opts               []reqOpt
	}{
		{http.MethodPost, "/auth/signup", creds("bob", "correct-horse-1"), nil},
		{http.MethodPost, "/auth/login", creds("alice", "correct-horse-1"), nil},
		{http.MethodPost, "/auth/token", creds("alice", "correct-horse-1"), nil},
		{http.MethodPost, "/auth/refresh", "", []reqOpt{withCookies(refresh), h.sameOrigin()}},
		{http.MethodPost, "/auth/logout", "", []reqOpt{withCookies(refresh), h.sameOrigin()}},
		{http.MethodGet, "/auth/me", "", []reqOpt{withCookies(access)}},
	} {
		r := h.do(c.method, c.path, c.body, c.opts...)
		if r.StatusCode != 503 || r.errCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %s", c.path, r.StatusCode, r.body)
		}
		if strings.Contains(strings.ToLower(string(r.body)), "sql") {
			t.Errorf("%s leaks the backend error: %s", c.path, r.body)
		}
	}
	// Store failures do not count as failed logins.
	if n := h.svc.guard.failures(); n != 0 {
		t.Errorf("the login guard holds %d failures after store failures", n)
	}
	if !strings.Contains(h.logs.String(), "level=ERROR") {
		t.Error("backend failures not logged")
	}
}

func TestNewRequiresDeps(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Argon2 = testArgon2
	if _, err := New(cfg, Deps{Keys: mustKey(t)}); err == nil {
		t.Error("New without a store succeeded")
	}
	bad := cfg
	bad.AccessTTL = 0
	if _, err := New(bad, Deps{}); err == nil || !strings.Contains(err.Error(), "auth.access_ttl") {
		t.Errorf("New with a bad config: %v", err)
	}
}

func mustKey(t *testing.T) *token.SigningKey {
	t.Helper()
	k, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
