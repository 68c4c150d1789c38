package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/mempubsub"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/sqlitestore"
	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/trace"
)

// waitTimeout bounds every wait for an expected event.
const waitTimeout = 10 * time.Second

// testEnv is one chat node on loopback with a real SQLite store and the
// in-process broker.
type testEnv struct {
	t      testing.TB
	svc    *Service
	srv    *httptest.Server
	st     *sqlitestore.Store
	br     *mempubsub.Broker
	key    *token.SigningKey
	signer *token.Signer
	// keySet, when set, is the verifier's key set of the nodes startNode
	// starts from then on (the signing key's own set otherwise).
	keySet token.KeySet
	// syncStore makes startNode hide the store's AppendMessageAsync, as
	// with a store without it (mongostore): sends go through syncAppender.
	syncStore bool
	// wrapStore, when set, wraps the store startNode hands the service.
	wrapStore func(store.Store) store.Store
	// wrapPresence, when set, wraps the presence registry startNode hands
	// the service.
	wrapPresence func(pubsub.Presence) pubsub.Presence
	// wrapBroker, when set, wraps the broker startNode hands the service.
	wrapBroker func(pubsub.Broker) pubsub.Broker
	// notifier, when set, makes the Notifier of the nodes startNode starts
	// (push_test.go), from the node's store and presence.
	notifier func(st store.Store, pres pubsub.Presence) Notifier
	// tracer, when set, is the tracer provider of the nodes startNode
	// starts from then on (tracing off otherwise).
	tracer trace.TracerProvider
}

// syncOnlyStore is a store.Store without store.AsyncAppender.
type syncOnlyStore struct{ store.Store }

func newTestEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	return newTestEnvWith(t, mod, nil)
}

// newTestEnvWith is newTestEnv with setup run on the env before its node starts.
func newTestEnvWith(t testing.TB, mod func(*Config), setup func(*testEnv)) *testEnv {
	t.Helper()
	// CHATD_BENCH_SYNC=NORMAL measures without an fsync per commit.
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "chat.db"), sqlitestore.Options{Synchronous: os.Getenv("CHATD_BENCH_SYNC")})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	br := mempubsub.New()
	t.Cleanup(func() { _ = br.Close() })
	key, err := token.LoadOrCreateKey(filepath.Join(t.TempDir(), "signing.pem"))
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	e := &testEnv{t: t, st: st, br: br, key: key, signer: token.NewSigner(key, "chatd", "chatd", time.Hour)}
	if setup != nil {
		setup(e)
	}
	e.svc, e.srv = e.startNode("node-1", mod)
	return e
}

// startNode starts a chat node on e's store, broker and keys.
func (e *testEnv) startNode(nodeID string, mod func(*Config)) (*Service, *httptest.Server) {
	t := e.t
	t.Helper()
	cfg := DefaultConfig()
	cfg.OfflineGrace = 300 * time.Millisecond
	// Tests that flood on purpose send far beyond a person's rate; the
	// limit tests set the limits they check.
	cfg.SendRate, cfg.SendBurst = 1e6, 1e6
	cfg.MaxSocketsPerUser, cfg.MaxSocketsPerAddr = 10_000, 10_000
	if mod != nil {
		mod(&cfg)
	}
	level := slog.LevelError
	if testing.Verbose() {
		level = slog.LevelWarn
	}
	var st store.Store = e.st
	if e.syncStore {
		st = syncOnlyStore{e.st}
	}
	if e.wrapStore != nil {
		st = e.wrapStore(st)
	}
	var pres pubsub.Presence = e.br
	if e.wrapPresence != nil {
		pres = e.wrapPresence(pres)
	}
	var br pubsub.Broker = e.br
	if e.wrapBroker != nil {
		br = e.wrapBroker(br)
	}
	keys := e.key.KeySet()
	if e.keySet != nil {
		keys = e.keySet
	}
	var notifier Notifier
	if e.notifier != nil {
		notifier = e.notifier(st, pres)
	}
	svc, err := New(cfg, Deps{
		Store: st, Broker: br, Presence: pres, Notifier: notifier,
		Verifier: token.NewVerifier(keys, "chatd", "chatd"),
		NodeID:   nodeID,
		Tracer:   e.tracer,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", nodeID),
	})
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := svc.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return svc, srv
}

// node returns a view of e whose REST calls and dials go to another node
// sharing e's store, broker and keys.
func (e *testEnv) node(nodeID string, mod func(*Config)) *testEnv {
	n := *e
	n.svc, n.srv = e.startNode(nodeID, mod)
	return &n
}

type testUser struct {
	id, name, sid, token string
}

// user creates a user and a session for it, and signs an access token.
func (e *testEnv) user(name string) *testUser {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now()
	u := store.User{ID: store.NewID(), Username: name, DisplayName: strings.ToUpper(name[:1]) + name[1:],
		PasswordHash: "unused", CreatedAt: now}
	if err := e.st.CreateUser(ctx, u); err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	tu := &testUser{id: u.ID, name: name}
	tu.sid, tu.token = e.session(u.ID)
	return tu
}

// session creates another session of userID and returns its id and token.
func (e *testEnv) session(userID string) (sid, token string) {
	e.t.Helper()
	now := time.Now()
	sid = store.NewID()
	if err := e.st.CreateSession(context.Background(), store.Session{ID: sid, UserID: userID,
		RefreshHash: "hash-" + sid, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	token, _, err := e.signer.Sign(userID, sid, now)
	if err != nil {
		e.t.Fatalf("sign: %v", err)
	}
	return sid, token
}

// call makes a REST request with a bearer token (none if tok is empty) and
// decodes a JSON response into out when out is non-nil.
func (e *testEnv) call(tok, method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			buf, _ := json.Marshal(b)
			rd = bytes.NewReader(buf)
		}
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return e.do(req, out)
}

func (e *testEnv) do(req *http.Request, out any) int {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", req.Method, req.URL.Path, data, err)
		}
	}
	return resp.StatusCode
}

// apiError is api.md's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (e *testEnv) wsURL() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws" }

// dialRaw opens a WebSocket for u with extra headers, without reading.
func (e *testEnv) dialRaw(tok string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	if hdr == nil {
		hdr = http.Header{}
	}
	if tok != "" {
		hdr.Set("Authorization", "Bearer "+tok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{HTTPHeader: hdr})
}

// frame is a server frame decoded loosely.
type frame map[string]any

func (f frame) typ() string { s, _ := f["type"].(string); return s }

func (f frame) obj(k string) frame { m, _ := f[k].(map[string]any); return frame(m) }

func (f frame) str(k string) string { s, _ := f[k].(string); return s }

func (f frame) num(k string) int64 { n, _ := f[k].(float64); return int64(n) }

// wsClient is a test WebSocket client whose reader goroutine queues every
// frame it gets.
type wsClient struct {
	t      testing.TB
	name   string
	c      *websocket.Conn
	frames chan frame
	done   chan struct{}
	err    error // the read error, set before done is closed
	hello  frame
}

// dial connects u and waits for hello.
func (e *testEnv) dial(u *testUser) *wsClient {
	e.t.Helper()
	return e.dialToken(u.name, u.token)
}

func (e *testEnv) dialToken(name, tok string) *wsClient {
	e.t.Helper()
	c, _, err := e.dialRaw(tok, nil)
	if err != nil {
		e.t.Fatalf("dial %s: %v", name, err)
	}
	c.SetReadLimit(1 << 20)
	w := &wsClient{t: e.t, name: name, c: c, frames: make(chan frame, 100000), done: make(chan struct{})}
	go w.read()
	e.t.Cleanup(func() { _ = c.CloseNow() })
	w.hello = w.next()
	if w.hello.typ() != "hello" {
		e.t.Fatalf("%s: first frame %v, want hello", name, w.hello)
	}
	return w
}

func (w *wsClient) read() {
	defer close(w.done)
	for {
		_, data, err := w.c.Read(context.Background())
		if err != nil {
			w.err = err
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			w.err = fmt.Errorf("server sent invalid JSON %q: %w", data, err)
			return
		}
		w.frames <- f
	}
}

// write sends v as a JSON text frame.
func (w *wsClient) write(v any) {
	w.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		w.t.Fatalf("marshal: %v", err)
	}
	w.writeRaw(data)
}

func (w *wsClient) writeRaw(data []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, data); err != nil {
		w.t.Fatalf("%s: write: %v", w.name, err)
	}
}

// next returns the next frame.
func (w *wsClient) next() frame {
	w.t.Helper()
	select {
	case f := <-w.frames:
		return f
	case <-w.done:
		select {
		case f := <-w.frames:
			return f
		default:
		}
		w.t.Fatalf("%s: connection ended while waiting for a frame: %v", w.name, w.err)
	case <-time.After(waitTimeout):
		w.t.Fatalf("%s: no frame within %s", w.name, waitTimeout)
	}
	return nil
}

// nextOf returns the next frame of type typ, returning the frames of other
// types skipped on the way.
func (w *wsClient) nextOf(typ string) (f frame, skipped []frame) {
	w.t.Helper()
	for {
		f := w.next()
		if f.typ() == typ {
			return f, skipped
		}
		skipped = append(skipped, f)
	}
}

// until returns frames up to and including the first one matching pred.
func (w *wsClient) until(pred func(frame) bool) []frame {
	w.t.Helper()
	var got []frame
	for {
		f := w.next()
		got = append(got, f)
		if pred(f) {
			return got
		}
	}
}

// closed waits for the connection to end and returns its close status.
func (w *wsClient) closed() websocket.StatusCode {
	w.t.Helper()
	select {
	case <-w.done:
		return websocket.CloseStatus(w.err)
	case <-time.After(waitTimeout):
		w.t.Fatalf("%s: still open after %s", w.name, waitTimeout)
	}
	return 0
}

func (w *wsClient) send(to *testUser, text, cmid string) {
	w.t.Helper()
	w.write(map[string]any{"type": "send", "to": to.id, "text": text, "client_msg_id": cmid})
}

// sendOK sends and waits for the ack, returning the stored message.
func (w *wsClient) sendOK(to *testUser, text, cmid string) frame {
	w.t.Helper()
	w.send(to, text, cmid)
	ack, skipped := w.nextOf("ack")
	for _, f := range skipped {
		if f.typ() == "error" {
			w.t.Fatalf("%s: send refused: %v", w.name, f)
		}
	}
	if ack.str("client_msg_id") != cmid {
		w.t.Fatalf("%s: ack %v, want client_msg_id %q", w.name, ack, cmid)
	}
	return ack.obj("message")
}

// restSend posts a message and returns the status and message.
func (e *testEnv) restSend(from, to *testUser, text, cmid string) (int, frame) {
	e.t.Helper()
	var out struct {
		Message frame `json:"message"`
	}
	st := e.call(from.token, "POST", "/api/messages", map[string]any{"to": to.id, "text": text, "client_msg_id": cmid}, &out)
	return st, out.Message
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var cmidSeq struct {
	sync.Mutex
	n int
}

// cmid returns a fresh client_msg_id.
func cmid() string {
	cmidSeq.Lock()
	defer cmidSeq.Unlock()
	cmidSeq.n++
	return fmt.Sprintf("c-%d-%d", time.Now().UnixNano(), cmidSeq.n)
}

// uniqueBySeq returns the messages of the `message` frames among fs, keeping
// the first of each seq, as a client that keys messages by seq does.
func uniqueBySeq(fs []frame) []frame {
	var out []frame
	seen := map[int64]bool{}
	for _, f := range fs {
		if f.typ() != "message" {
			continue
		}
		m := f.obj("message")
		if !seen[m.num("seq")] {
			seen[m.num("seq")] = true
			out = append(out, m)
		}
	}
	return out
}
