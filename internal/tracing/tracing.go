// Package tracing sets up OpenTelemetry tracing for a Portcullis program:
// an OTLP exporter (gRPC or HTTP/protobuf) behind a batching span
// processor, a sampler, and the resource naming the service. Off (no
// endpoint) it returns a nil *Provider, whose Tracer is nil: callers then
// start no spans at all, so tracing off costs nothing per call.
//
// Trace context travels as W3C Trace Context (traceparent, tracestate;
// propagation.TraceContext, for HTTP headers and MCP's params._meta
// alike), never baggage: a caller's baggage is not forwarded upstream, so
// nothing an agent attaches reaches a tool unvetted.
//
// The exporters also read the standard OTEL_EXPORTER_OTLP_* environment
// (headers such as a backend's API key, TLS certificates, compression,
// timeout), so secrets stay out of flags and the process list; the
// endpoint given here wins over OTEL_EXPORTER_OTLP_ENDPOINT.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// DefaultStageMin is the least own time a pipeline stage must take in a
// call to get a span of its own (the stages that cost anything: Cedar,
// schema validation at size, audit, JWT verification, a shadow decision).
const DefaultStageMin = 10 * time.Microsecond

// DefaultSampleRatio is the share of traces a program starts itself that
// are recorded (a caller's sampled flag is followed either way).
const DefaultSampleRatio = 1.0

// Config says where spans go and how many are kept.
type Config struct {
	// Endpoint is the OTLP collector's URL: http(s)://host:port, e.g.
	// http://collector:4317 for gRPC or http://collector:4318 for HTTP
	// (where /v1/traces is added when the URL has no path). "" turns
	// tracing off. http:// sends in plaintext.
	Endpoint string
	// Protocol is ProtocolGRPC or ProtocolHTTP (default HTTP).
	Protocol string
	// SampleRatio in [0, 1] is the share of traces this program starts
	// (no sampled parent came with the request) that are recorded. A
	// caller's traceparent decides for its own trace: sampled, recorded.
	SampleRatio float64
	// StageMin is the least own time a pipeline stage must take in a call
	// to get a span of its own (a stage that refuses the call always gets
	// one); 0 gives every stage a span.
	StageMin time.Duration
}

// Flags registers the tracing flags on f, with defaults: --trace-otlp-
// endpoint, --trace-otlp-protocol and --trace-sample-ratio.
func (c *Config) Flags(f *pflag.FlagSet) {
	f.StringVar(&c.Endpoint, "trace-otlp-endpoint", "", "export OpenTelemetry traces to this OTLP collector URL, e.g. http://collector:4318 (HTTP; /v1/traces is added when there is no path) or http://collector:4317 with --trace-otlp-protocol grpc; https:// for TLS; headers such as an API key come from OTEL_EXPORTER_OTLP_HEADERS; empty: no tracing")
	f.StringVar(&c.Protocol, "trace-otlp-protocol", ProtocolHTTP, "OTLP protocol of --trace-otlp-endpoint: http (protobuf) or grpc")
	f.Float64Var(&c.SampleRatio, "trace-sample-ratio", DefaultSampleRatio, "share (0 to 1) of the traces this program starts that are recorded; a caller's sampled traceparent is always followed")
	f.DurationVar(&c.StageMin, "trace-stage-min", DefaultStageMin, "a pipeline stage gets a span of its own in a traced call when its own time reaches this (a refusing stage always does); 0: every stage")
}

// Enabled reports whether spans are exported.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// Validate checks c and fills the defaults.
func (c *Config) Validate() error {
	if c.Protocol == "" {
		c.Protocol = ProtocolHTTP
	}
	var errs []error
	if c.Protocol != ProtocolHTTP && c.Protocol != ProtocolGRPC {
		errs = append(errs, fmt.Errorf("--trace-otlp-protocol %q: want http or grpc", c.Protocol))
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 || c.SampleRatio != c.SampleRatio {
		errs = append(errs, fmt.Errorf("--trace-sample-ratio %v: want a number from 0 to 1", c.SampleRatio))
	}
	if c.StageMin < 0 {
		errs = append(errs, fmt.Errorf("--trace-stage-min %v: want 0 or more", c.StageMin))
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--trace-otlp-endpoint: %w", err))
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			errs = append(errs, fmt.Errorf("--trace-otlp-endpoint %q: want an http:// or https:// URL with a host", c.Endpoint))
		case u.User != nil:
			errs = append(errs, errors.New("--trace-otlp-endpoint: put credentials in OTEL_EXPORTER_OTLP_HEADERS, not in the URL"))
		}
	}
	return errors.Join(errs...)
}

// Provider is a program's tracer provider. A nil *Provider is tracing
// off: its Tracer is nil and Shutdown does nothing.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Options are what New needs besides the Config.
type Options struct {
	// Service is service.name ("portcullis-dataplane").
	Service string
	// Instance is service.instance.id (the data plane's or node's name).
	Instance string
	// Version is service.version ("" for none).
	Version string
	// Logger receives export failures, at most one line a minute.
	Logger *slog.Logger
	// Exporter replaces the OTLP exporter (tests); Endpoint may then be
	// anything non-empty.
	Exporter sdktrace.SpanExporter
	// Batch overrides the span processor's batching (tests pass a short
	// timeout); zero values keep the SDK's defaults.
	Batch BatchOptions
}

// BatchOptions tune the batching span processor. The queue bounds the
// memory spans may take when the collector is slow: past it, spans are
// dropped, never waited for.
type BatchOptions struct {
	Timeout   time.Duration // longest a span waits before export (SDK: 5s)
	QueueSize int           // spans that may wait (SDK: 2048)
}

// New starts the exporter and returns the provider, or nil (tracing off)
// when cfg has no endpoint. cfg must have been validated.
func New(ctx context.Context, cfg Config, opts Options) (*Provider, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	exp := opts.Exporter
	if exp == nil {
		var err error
		exp, err = newExporter(ctx, cfg)
		if err != nil {
			return nil, err
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	exp = &loggingExporter{SpanExporter: exp, log: opts.Logger.With("component", "tracing"), endpoint: cfg.Endpoint}
	attrs := []attribute.KeyValue{attribute.String("service.name", opts.Service)}
	if opts.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", opts.Instance))
	}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	var batch []sdktrace.BatchSpanProcessorOption
	if opts.Batch.Timeout > 0 {
		batch = append(batch, sdktrace.WithBatchTimeout(opts.Batch.Timeout))
	}
	if opts.Batch.QueueSize > 0 {
		batch = append(batch, sdktrace.WithMaxQueueSize(opts.Batch.QueueSize))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, batch...),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return &Provider{tp: tp}, nil
}

// newExporter builds the OTLP exporter cfg names. It does not connect:
// the first export does.
func newExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("--trace-otlp-endpoint: %w", err)
	}
	if cfg.Protocol == ProtocolGRPC {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		if err != nil {
			return nil, fmt.Errorf("OTLP/gRPC trace exporter: %w", err)
		}
		return exp, nil
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/v1/traces"
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, fmt.Errorf("OTLP/HTTP trace exporter: %w", err)
	}
	return exp, nil
}

// Tracer returns the named tracer, nil when tracing is off.
func (p *Provider) Tracer(name string) trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tp.Tracer(name)
}

// Shutdown exports what is queued (within ctx) and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// ForceFlush exports every span ended so far (within ctx).
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.ForceFlush(ctx)
}

// loggingExporter logs failed exports, at most once a minute, so that a
// collector that is down shows in the log without flooding it.
type loggingExporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	endpoint string

	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	e.dropped += len(spans)
	if now := time.Now(); now.Sub(e.last) >= time.Minute {
		e.log.WarnContext(ctx, "spans could not be exported; they are dropped", "endpoint", e.endpoint, "spans", e.dropped, "err", err)
		e.last, e.dropped = now, 0
	}
	e.mu.Unlock()
	return err
}
