package chat

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorder is a node's tracer provider that keeps every ended span.
func recorder(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return tp, rec
}

// spanNamed waits for the ended span called name among rec's and returns it.
func spanNamed(t testing.TB, rec *tracetest.SpanRecorder, name string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	waitUntil(t, "span "+name, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == name && (match == nil || match(s)) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func childOf(parent sdktrace.ReadOnlySpan) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		return s.Parent().SpanID() == parent.SpanContext().SpanID() && s.SpanContext().TraceID() == parent.SpanContext().TraceID()
	}
}

// TestTraceAcrossNodes: a message sent over a WebSocket on node A to a user
// connected on node B is one trace: A's chat.send with its validation,
// store append, publish and the ack's write, then B's chat.deliver, child
// of A's publish through the broker envelope, and B's write to the socket.
func TestTraceAcrossNodes(t *testing.T) {
	tpA, recA := recorder(t)
	tpB, recB := recorder(t)
	e := newTestEnvWith(t, nil, func(e *testEnv) { e.tracer = tpA })
	e.tracer = tpB
	nb := e.node("node-2", nil)
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.dial(alice), nb.dial(bob)

	msg := a.sendOK(bob, "traced", cmid())
	if got, _ := b.nextOf("message"); got.obj("message").str("id") != msg.str("id") {
		t.Fatalf("bob got %v, want %v", got, msg)
	}

	send := spanNamed(t, recA, "chat.send", nil)
	if send.Parent().IsValid() {
		t.Errorf("a WebSocket send starts its trace; parent %v", send.Parent())
	}
	for _, name := range []string{"chat.validate", "store.append", "broker.publish", "ws.write"} {
		spanNamed(t, recA, name, childOf(send))
	}
	publish := spanNamed(t, recA, "broker.publish", childOf(send))
	deliver := spanNamed(t, recB, "chat.deliver", childOf(publish))
	if !deliver.Parent().IsRemote() {
		t.Error("chat.deliver's parent did not come through the broker")
	}
	write := spanNamed(t, recB, "ws.write", childOf(deliver))
	if write.Status().Code != 0 {
		t.Errorf("write span status %v", write.Status())
	}
	if !containsAttr(send, "chat.kind", "text") {
		t.Errorf("chat.send lacks chat.kind=text: %v", send.Attributes())
	}
	if !containsAttr(send, "chat.message_id", msg.str("id")) {
		t.Errorf("chat.send lacks chat.message_id=%s: %v", msg.str("id"), send.Attributes())
	}
}

func containsAttr(s sdktrace.ReadOnlySpan, key, val string) bool {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.AsString() == val {
			return true
		}
	}
	return false
}

// TestTracedEnvelope: the traced envelope carries the span context and the
// same except id and frame as the plain one, which parseEnvelope still reads.
func TestTracedEnvelope(t *testing.T) {
	env := append(newEnvelope(envMessage, 42, 8), `{"a":1}`...)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled,
	})
	traced := tracedEnvelope(env, sc)
	for _, p := range [][]byte{env, traced} {
		kind, except, frame, ok := parseEnvelope(p)
		if !ok || kind != envMessage || except != 42 || !bytes.Equal(frame, []byte(`{"a":1}`)) {
			t.Fatalf("parseEnvelope(%q) = %c %d %q %v", p, kind, except, frame, ok)
		}
	}
	got, ok := envelopeTrace(traced)
	if !ok || got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() || !got.IsRemote() {
		t.Fatalf("envelopeTrace = %v %v, want %v", got, ok, sc)
	}
	if _, ok := envelopeTrace(env); ok {
		t.Fatal("a plain envelope carries no trace")
	}
	if _, _, _, ok := parseEnvelope(traced[:envHeader+envTraceLen]); ok {
		t.Fatal("a traced envelope without a frame was accepted")
	}
}

// storedRecorder is a Notifier that records the messages it is told of.
type storedRecorder struct {
	mu  sync.Mutex
	ids []string
}

func (n *storedRecorder) PublicKey() string          { return "" }
func (n *storedRecorder) CheckEndpoint(string) error { return nil }
func (n *storedRecorder) MessageStored(m store.Message) {
	n.mu.Lock()
	n.ids = append(n.ids, m.ID)
	n.mu.Unlock()
}

func (n *storedRecorder) has(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.ids, id)
}

// TestTracedSendNotifies: a traced send is published through its own path
// (fanOutTraced) and must still reach the push notifier, over both
// transports.
func TestTracedSendNotifies(t *testing.T) {
	tp, _ := recorder(t)
	n := &storedRecorder{}
	e := newTestEnvWith(t, nil, func(e *testEnv) {
		e.tracer = tp
		e.notifier = func(store.Store, pubsub.Presence) Notifier { return n }
	})
	alice, bob := e.user("alice"), e.user("bob")
	ws := e.dial(alice).sendOK(bob, "over ws", cmid())
	st, rest := e.restSend(alice, bob, "over rest", cmid())
	if st != 201 {
		t.Fatalf("rest send: %d", st)
	}
	for _, id := range []string{ws.str("id"), rest.str("id")} {
		waitUntil(t, "the notifier told of "+id, func() bool { return n.has(id) })
	}
}
