// Package tracing sets up OpenTelemetry tracing for one chatd process: an
// SDK tracer provider exporting OTLP over HTTP/protobuf, and the HTTP
// server middleware that gives every request a span. It is off unless
// tracing.otlp_endpoint is set; chat and gateway see only the API's
// trace.TracerProvider (nil when off), so they carry no SDK.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config is the `tracing` section of config.yaml.
type Config struct {
	// OTLPEndpoint is the OTLP/HTTP traces URL of a collector (Jaeger,
	// Tempo, the OpenTelemetry Collector), for example
	// http://otel-collector:4318; a URL without a path gets /v1/traces.
	// Empty: tracing is off, at no cost.
	OTLPEndpoint string `mapstructure:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded (0 to 1); a span
	// whose parent came from elsewhere follows the parent's decision.
	SampleRatio float64 `mapstructure:"sample_ratio"`
}

// DefaultConfig is tracing off, sampling every trace once it is on.
func DefaultConfig() Config { return Config{SampleRatio: 1} }

// Enabled reports whether the process exports traces.
func (c Config) Enabled() bool { return c.OTLPEndpoint != "" }

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("tracing.sample_ratio: %v is not between 0 and 1", c.SampleRatio)
	}
	if c.OTLPEndpoint == "" {
		return nil
	}
	if _, err := endpointURL(c.OTLPEndpoint); err != nil {
		return err
	}
	return nil
}

// endpointURL is the traces URL of endpoint: /v1/traces when it has no path.
func endpointURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("tracing.otlp_endpoint: %q is not a URL like http://otel-collector:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Propagator is the one wire format of trace context between chatd's
// processes and to the outside: W3C traceparent and tracestate.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Provider is a running tracer provider.
type Provider struct {
	sdk *sdktrace.TracerProvider
}

// Identity names the process in its spans' resource.
type Identity struct {
	Service  string // service.name: chatd-gateway, chatd-chat, chatd-auth, or chatd
	Instance string // service.instance.id: the node id
	Version  string // service.version
}

// New starts a provider that batches spans and exports them to
// cfg.OTLPEndpoint. The batch queue is bounded (OpenTelemetry's default,
// 2048 spans, tunable with OTEL_BSP_* variables): when the collector is
// slow or down, spans are dropped, never waited for. The exporter also
// reads OTEL_EXPORTER_OTLP_HEADERS, _CERTIFICATE and _TIMEOUT; resource
// attributes from OTEL_RESOURCE_ATTRIBUTES are added. Export errors are
// logged on log, at most one line a minute.
func New(ctx context.Context, cfg Config, id Identity, log *slog.Logger) (*Provider, error) {
	if !cfg.Enabled() {
		return nil, errors.New("tracing: no tracing.otlp_endpoint")
	}
	ep, err := endpointURL(cfg.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(ep))
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	res, err := resource.Merge(
		resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName(id.Service),
			semconv.ServiceInstanceID(id.Instance),
			semconv.ServiceVersion(id.Version),
		),
		resource.Environment(),
	)
	if err != nil {
		// A schema conflict only: keep our attributes.
		res = resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(id.Service),
			semconv.ServiceInstanceID(id.Instance), semconv.ServiceVersion(id.Version))
	}
	setErrorLog(log)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Provider{sdk: tp}, nil
}

// TracerProvider is what chat and gateway are given.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.sdk }

// Shutdown exports the spans still queued, until ctx ends.
func (p *Provider) Shutdown(ctx context.Context) error { return p.sdk.Shutdown(ctx) }

// errorLog is where OpenTelemetry's internal errors (failed exports) go:
// its error handler is process-wide, so the last provider's logger wins.
var (
	errorLog     atomic.Pointer[slog.Logger]
	lastErrorLog atomic.Int64
	handlerSet   atomic.Bool
)

const errorLogEvery = time.Minute

func setErrorLog(log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	errorLog.Store(log)
	if handlerSet.CompareAndSwap(false, true) {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			now := time.Now().UnixNano()
			if last := lastErrorLog.Load(); now-last < int64(errorLogEvery) || !lastErrorLog.CompareAndSwap(last, now) {
				return
			}
			errorLog.Load().Warn("tracing: export failed; spans are dropped meanwhile", "err", err)
		}))
	}
}
