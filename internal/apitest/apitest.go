// Package apitest is a small client of chatd's public API (docs/api.md) for
// tests that drive a real server over loopback: HTTP with a cookie jar or a
// bearer token, and WebSocket connections that collect events. It is
// imported from tests only.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// User is a signed-up user with its own cookie jar.
type User struct {
	T        testing.TB
	Base     string // http://host:port
	ID       string
	Username string
	Password string
	Token    string // bearer token from /auth/token, if taken
	HTTP     *http.Client
}

// Response is a decoded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// ErrorCode returns the api.md error code of the body, or "".
func (r Response) ErrorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// NewUser returns a client without an account, with a fresh cookie jar.
func NewUser(t testing.TB, base string) *User {
	jar, _ := cookiejar.New(nil)
	return &User{T: t, Base: strings.TrimSuffix(base, "/"), HTTP: &http.Client{Jar: loopbackJar{jar}, Timeout: 30 * time.Second}}
}

// loopbackJar treats plain-HTTP loopback like HTTPS, as browsers do for
// localhost, so chatd's Secure cookies work against a test server.
type loopbackJar struct{ http.CookieJar }

func secureLoopback(u *url.URL) *url.URL {
	if u.Scheme == "http" || u.Scheme == "ws" {
		c := *u
		c.Scheme = "https"
		return &c
	}
	return u
}

func (j loopbackJar) SetCookies(u *url.URL, cs []*http.Cookie) {
	j.CookieJar.SetCookies(secureLoopback(u), cs)
}

func (j loopbackJar) Cookies(u *url.URL) []*http.Cookie {
	return j.CookieJar.Cookies(secureLoopback(u))
}

// Password is the password SignUp gives every account: long enough, not a
// common one, and containing no test's username, as auth's policy asks.
const Password = "horse-battery-staple-42"

// SignUp creates the account name with Password (the session cookies land
// in the jar).
func SignUp(t testing.TB, base, name string) *User {
	t.Helper()
	return SignUpAs(t, base, name, Password, "")
}

// SignUpAs creates an account with the given password and display name
// (empty: the server's default).
func SignUpAs(t testing.TB, base, name, password, display string) *User {
	t.Helper()
	body := map[string]string{"username": name, "password": password}
	if display != "" {
		body["display_name"] = display
	}
	return enter(t, base, "/auth/signup", body, http.StatusCreated)
}

// Login logs an existing account in, as another device would.
func Login(t testing.TB, base, name, password string) *User {
	t.Helper()
	return enter(t, base, "/auth/login", map[string]string{"username": name, "password": password}, http.StatusOK)
}

// SignUpOver is SignUp through a client that uses rt (a TLS client that
// trusts a test CA, or dials a fixed address for a name).
func SignUpOver(t testing.TB, base, name string, rt http.RoundTripper) *User {
	t.Helper()
	u := NewUser(t, base)
	u.HTTP.Transport = rt
	return u.enter("/auth/signup", map[string]string{"username": name, "password": Password}, http.StatusCreated)
}

func enter(t testing.TB, base, path string, body map[string]string, want int) *User {
	t.Helper()
	return NewUser(t, base).enter(path, body, want)
}

func (u *User) enter(path string, body map[string]string, want int) *User {
	t := u.T
	t.Helper()
	u.Username, u.Password = body["username"], body["password"]
	r := u.Do("POST", path, body)
	if r.Status != want {
		t.Fatalf("%s %s: %d %s", path, u.Username, r.Status, r.Body)
	}
	var out struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	r.JSON(t, &out)
	u.ID = out.User.ID
	return u
}

// TakeToken gets a bearer token with /auth/token; requests then use it.
func (u *User) TakeToken() {
	u.T.Helper()
	r := u.Do("POST", "/auth/token", map[string]string{"username": u.Username, "password": u.Password})
	if r.Status != http.StatusOK {
		u.T.Fatalf("token %s: %d %s", u.Username, r.Status, r.Body)
	}
	var out struct {
		Token string `json:"token"`
	}
	r.JSON(u.T, &out)
	u.Token = out.Token
}

// Do sends a request; a non-nil body is sent as JSON. Browser-like
// same-origin headers are set so cookie-authenticated requests pass.
func (u *User) Do(method, path string, body any) Response {
	u.T.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			u.T.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u.Base+path, rd)
	if err != nil {
		u.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Origin", u.Base)
	if u.Token != "" {
		req.Header.Set("Authorization", "Bearer "+u.Token)
	}
	resp, err := u.HTTP.Do(req)
	if err != nil {
		u.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Message is api.md's Message.
type Message struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	From           string `json:"from"`
	To             string `json:"to"`
	Text           string `json:"text"`
	ClientMsgID    string `json:"client_msg_id"`
	CreatedAt      string `json:"created_at"`
	Deleted        bool   `json:"deleted"`
}

// History pages `after=` from seq 0 until has_more is false (the catch-up rule).
func (u *User) History(peerID string) []Message {
	u.T.Helper()
	var all []Message
	after := int64(0)
	for {
		r := u.Do("GET", fmt.Sprintf("/api/conversations/%s/messages?after=%d&limit=200", url.PathEscape(peerID), after), nil)
		if r.Status != http.StatusOK {
			u.T.Fatalf("history: %d %s", r.Status, r.Body)
		}
		var page struct {
			Messages []Message `json:"messages"`
			HasMore  bool      `json:"has_more"`
		}
		r.JSON(u.T, &page)
		all = append(all, page.Messages...)
		if !page.HasMore || len(page.Messages) == 0 {
			return all
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

// Event is one server-to-client WebSocket frame.
type Event struct {
	Type        string          `json:"type"`
	ClientMsgID string          `json:"client_msg_id"`
	Message     Message         `json:"message"`
	Raw         json.RawMessage `json:"-"`
}

// Conn is a WebSocket connection whose frames are collected by a reader.
type Conn struct {
	t      testing.TB
	ws     *websocket.Conn
	mu     sync.Mutex
	events []Event
	notify chan struct{}
	closed chan struct{}
	err    error
}

// Dial opens /ws for u (cookie or bearer) and waits for hello.
func (u *User) Dial() *Conn {
	u.T.Helper()
	c, err := u.TryDial()
	if err != nil {
		u.T.Fatalf("dial: %v", err)
	}
	return c
}

// TryDial is Dial returning the error.
func (u *User) TryDial() (*Conn, error) {
	h := http.Header{"Origin": {u.Base}}
	if u.Token != "" {
		h.Set("Authorization", "Bearer "+u.Token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(u.Base, "http")+"/ws", &websocket.DialOptions{HTTPHeader: h, HTTPClient: u.HTTP})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &Conn{t: u.T, ws: ws, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.read()
	if _, err := c.TryWait(func(e Event) bool { return e.Type == "hello" }, 10*time.Second); err != nil {
		ws.CloseNow()
		return nil, err
	}
	u.T.Cleanup(func() { ws.CloseNow() })
	return c, nil
}

func (c *Conn) read() {
	defer close(c.closed)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var e Event
		_ = json.Unmarshal(data, &e)
		e.Raw = data
		c.mu.Lock()
		c.events = append(c.events, e)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Send writes one client frame.
func (c *Conn) Send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

// Wait returns the first collected event that matches, waiting up to d.
func (c *Conn) Wait(match func(Event) bool, d time.Duration) Event {
	c.t.Helper()
	e, err := c.TryWait(match, d)
	if err != nil {
		c.t.Fatal(err)
	}
	return e
}

// TryWait is Wait returning an error instead of failing the test.
func (c *Conn) TryWait(match func(Event) bool, d time.Duration) (Event, error) {
	deadline := time.After(d)
	for {
		c.mu.Lock()
		for _, e := range c.events {
			if match(e) {
				c.mu.Unlock()
				return e, nil
			}
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return Event{}, fmt.Errorf("connection closed while waiting: %w", err)
		}
		select {
		case <-c.notify:
		case <-c.closed:
		case <-deadline:
			return Event{}, fmt.Errorf("no matching event within %s", d)
		}
	}
}

// Events returns a copy of what was collected so far.
func (c *Conn) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// WaitClosed waits for the server to close the connection and returns
// its close status (-1 if it ended without a close frame).
func (c *Conn) WaitClosed(d time.Duration) websocket.StatusCode {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(d):
		c.t.Fatalf("connection still open after %s", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return websocket.CloseStatus(c.err)
}

// Close closes the connection normally.
func (c *Conn) Close() { _ = c.ws.Close(websocket.StatusNormalClosure, "") }

// IsType matches events by type.
func IsType(typ string) func(Event) bool { return func(e Event) bool { return e.Type == typ } }

// IsMessage matches a `message` or `ack` carrying client_msg_id id.
func IsMessage(typ, id string) func(Event) bool {
	return func(e Event) bool { return e.Type == typ && e.Message.ClientMsgID == id }
}
