package gateway

import (
	"context"
	"net/http"
	"net/http/httputil"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext is the W3C traceparent/tracestate format the replicas read.
var traceContext = propagation.TraceContext{}

// startAttempt starts the client span of one upstream attempt of a plain
// request under the request's server span, and points *ctx at it; nil when
// tracing is off or r is a WebSocket upgrade (a tunnel lives as long as its
// socket; chat traces its messages one by one).
func (g *Gateway) startAttempt(ctx *context.Context, upgrade bool, kind string, u *upstream, try int) trace.Span {
	if g.tracer == nil || upgrade {
		return nil
	}
	c, span := g.tracer.Start(*ctx, "gateway.proxy "+kind, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gateway.upstream", u.name), attribute.Int("gateway.attempt", try+1)))
	*ctx = c
	return span
}

// endAttempt ends an attempt's span with its outcome.
func endAttempt(span trace.Span, a *attempt) {
	if span == nil {
		return
	}
	if a.status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", a.status))
	}
	switch {
	case a.err != nil:
		span.RecordError(a.err)
		span.SetStatus(codes.Error, "proxy error")
	case a.status >= http.StatusInternalServerError:
		span.SetStatus(codes.Error, http.StatusText(a.status))
	}
	span.End()
}

// propagateTrace replaces the client's trace headers with the attempt's
// span context (none when tracing is off): a replica believes the
// gateway's traceparent (it is a trusted proxy there), so a client must not
// pass its own through.
func propagateTrace(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	h.Del("Traceparent")
	h.Del("Tracestate")
	traceContext.Inject(pr.In.Context(), propagation.HeaderCarrier(h))
}
