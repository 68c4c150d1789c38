package tracing

import (
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chatd/chatd/httpapi"
)

func TestSpanName(t *testing.T) {
	for _, tc := range []struct{ method, pattern, path, want string }{
		{"POST", "POST /api/messages", "/api/messages", "POST /api/messages"},
		{"GET", "GET /api/users/{id}", "/api/users/u1", "GET /api/users/{id}"},
		{"POST", "/", "/api/messages", "POST /api/*"},
		{"GET", "/", "/auth/jwks", "GET /auth/*"},
		{"GET", "/", "/", "GET /"},
		{"GET", "/", "/app.js", "GET /*"},
		{"GET", "", "/nowhere/x", "GET /nowhere/*"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		r.Pattern = tc.pattern
		if got := spanName(r); got != tc.want {
			t.Errorf("spanName(%s %s, pattern %q) = %q, want %q", tc.method, tc.path, tc.pattern, got, tc.want)
		}
	}
}

// TestHandlerTrustsOnlyProxies: a request's traceparent is continued only
// when its peer is a trusted proxy; operational paths and WebSocket
// upgrades get no span; the status and route are recorded.
func TestHandlerTrustsOnlyProxies(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/messages", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("GET /ws", func(http.ResponseWriter, *http.Request) {})
	trusted, _ := httpapi.ParseProxies([]string{"10.0.0.1"})
	h := Handler(tp, trusted, mux)
	const parent = "4bf92f3577b34da6a3ce929d0e0e4736"
	serve := func(method, path, peer string, hdr map[string]string) {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = peer + ":5000"
		r.Header.Set("Traceparent", "00-"+parent+"-00f067aa0ba902b7-01")
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	serve("POST", "/api/messages", "10.0.0.1", nil)
	serve("POST", "/api/messages", "192.0.2.7", nil)
	serve("GET", "/healthz", "10.0.0.1", nil)
	serve("GET", "/ws", "10.0.0.1", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"})

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (no span for /healthz or an upgrade): %v", len(spans), spans)
	}
	fromProxy, fromClient := spans[0], spans[1]
	if fromProxy.SpanContext().TraceID().String() != parent || !fromProxy.Parent().IsRemote() {
		t.Errorf("a trusted proxy's traceparent was not continued: %v", fromProxy.SpanContext())
	}
	if fromClient.SpanContext().TraceID().String() == parent || fromClient.Parent().IsValid() {
		t.Errorf("an untrusted client's traceparent was continued: %v", fromClient.SpanContext())
	}
	for _, s := range spans {
		if s.Name() != "POST /api/messages" {
			t.Errorf("span name %q", s.Name())
		}
		found := false
		for _, kv := range s.Attributes() {
			if kv.Key == "http.response.status_code" && kv.Value.AsInt64() == 201 {
				found = true
			}
		}
		if !found {
			t.Errorf("span without status 201: %v", s.Attributes())
		}
	}
}
