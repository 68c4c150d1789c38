package tracing

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/chatd/chatd/httpapi"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Handler gives every request to next a server span, named after the
// route the mux matched ("POST /api/messages"). The caller's traceparent is
// continued only when the connection comes from one of trusted (the
// gateway, for auth and chat replicas; a load balancer, for a gateway): a
// client cannot choose trace ids or force sampling. Operational paths
// (/healthz, /readyz, /metrics) and WebSocket upgrades, whose request lives
// as long as the socket, get no span: a WebSocket's messages are traced one
// by one by chat.
func Handler(tp trace.TracerProvider, trusted []netip.Prefix, next http.Handler) http.Handler {
	tr := tp.Tracer("github.com/chatd/chatd/internal/tracing")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		if httpapi.Trusted(trusted, httpapi.PeerAddr(r.RemoteAddr)) {
			ctx = Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		ctx, span := tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		next.ServeHTTP(sw, r)
		span.SetName(spanName(r))
		if r.Pattern != "" { // set by the mux on r
			span.SetAttributes(semconv.HTTPRoute(r.Pattern))
		}
		span.SetAttributes(attribute.Int(string(semconv.HTTPResponseStatusCodeKey), sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// spanName is the route the mux matched ("POST /api/messages"), or, for
// the catch-all a gateway is mounted on, the method and the path's first
// segment ("POST /api/*"): never the whole path, which holds ids.
func spanName(r *http.Request) string {
	p := r.Pattern
	if p != "" && p != "/" && !strings.HasSuffix(p, " /") {
		return p
	}
	path := r.URL.Path
	if i := strings.IndexByte(path[min(1, len(path)):], '/'); i >= 0 {
		return r.Method + " " + path[:i+1] + "/*"
	}
	if path == "/" || path == "" {
		return r.Method + " /"
	}
	return r.Method + " /*"
}

// statusWriter records the response status; Unwrap lets
// http.ResponseController reach Flush and the deadlines underneath.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	w.wrote = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
