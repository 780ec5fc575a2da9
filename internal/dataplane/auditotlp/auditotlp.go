// Package auditotlp exports a data plane's audit records as OpenTelemetry
// log records over OTLP/HTTP (protobuf), for teams that already collect
// logs that way. It is a copy for their pipeline, not the audit trail: the
// local log and the control plane's store stay the record of truth, and
// the export drops records rather than ever slowing a call.
//
// Each record becomes one log record: its time is the call's start, its
// severity INFO for outcome ok, WARN for refused and ERROR for error, its
// body a one-line summary, and its attributes the record's fields under
// "portcullis.audit." (arguments_json as recorded, so already redacted;
// hash and prev_hash in hex). The resource names the service
// ("portcullis-dataplane") and the data plane (service.instance.id).
//
// Records are queued (Enqueue never blocks: a full queue drops the record
// and counts it), and one goroutine sends them in batches of up to
// BatchSize, at least every Interval. A batch the collector refuses or
// does not answer in time is counted as failed and not retried, so a slow
// collector cannot make the queue grow.
package auditotlp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Defaults for Options.
const (
	DefaultQueue     = 8192
	DefaultBatchSize = 512
	DefaultInterval  = time.Second
	DefaultTimeout   = 10 * time.Second
)

// Options configures an Exporter.
type Options struct {
	// Endpoint is the OTLP/HTTP logs URL, e.g.
	// http://collector:4318/v1/logs; without a path, /v1/logs is used.
	Endpoint string
	// Dataplane names this data plane in the resource.
	Dataplane string
	// Queue is how many records may wait (default 8192); more are
	// dropped.
	Queue int
	// BatchSize is the most records one request carries (default 512).
	BatchSize int
	// Interval is the longest a queued record waits for its batch to fill
	// (default 1s).
	Interval time.Duration
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Stats counts what became of the records handed to Enqueue.
type Stats struct {
	// Exported records were accepted by the collector.
	Exported uint64
	// Dropped records found the queue full.
	Dropped uint64
	// Failed records were in a batch the collector refused or did not
	// answer.
	Failed uint64
}

// Exporter sends audit records to an OTLP collector. Enqueue is safe for
// concurrent use and never blocks.
type Exporter struct {
	opts     Options
	log      *slog.Logger
	exp      *otlploghttp.Exporter
	provider *sdklog.LoggerProvider
	logger   otellog.Logger
	collect  *collector

	queue chan *auditv1.Record
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	exported, dropped, failed atomic.Uint64
	lastWarn                  atomic.Int64 // unix nanos of the last failure logged
}

// New starts an exporter.
func New(opts Options) (*Exporter, error) {
	u, err := url.Parse(opts.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audit OTLP endpoint %q: want an http:// or https:// URL", opts.Endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/logs"
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	exp, err := otlploghttp.New(context.Background(),
		otlploghttp.WithEndpointURL(u.String()),
		otlploghttp.WithTimeout(opts.Timeout),
		// Retrying would hold up every later batch; a failed batch is
		// counted instead.
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}),
	)
	if err != nil {
		return nil, fmt.Errorf("audit OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "portcullis-dataplane"),
		attribute.String("service.instance.id", opts.Dataplane),
	)
	c := &collector{}
	provider := sdklog.NewLoggerProvider(
		sdklog.WithResource(res),
		sdklog.WithProcessor(c),
		sdklog.WithAttributeCountLimit(-1),
		sdklog.WithAttributeValueLengthLimit(-1),
	)
	e := &Exporter{
		opts: opts, log: opts.Logger, exp: exp, provider: provider, collect: c,
		logger: provider.Logger("github.com/portcullis-gw/portcullis/audit"),
		queue:  make(chan *auditv1.Record, opts.Queue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go e.run()
	return e, nil
}

// Enqueue queues r for export, or drops it when the queue is full. r must
// not be changed afterwards.
func (e *Exporter) Enqueue(r *auditv1.Record) {
	select {
	case e.queue <- r:
	default:
		e.dropped.Add(1)
	}
}

// Stats returns the counts so far.
func (e *Exporter) Stats() Stats {
	return Stats{Exported: e.exported.Load(), Dropped: e.dropped.Load(), Failed: e.failed.Load()}
}

// Close sends what is queued (waiting at most until ctx ends) and stops.
func (e *Exporter) Close(ctx context.Context) error {
	e.once.Do(func() { close(e.stop) })
	select {
	case <-e.done:
	case <-ctx.Done():
	}
	return errors.Join(e.exp.Shutdown(ctx), e.provider.Shutdown(ctx))
}

func (e *Exporter) run() {
	defer close(e.done)
	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	batch := make([]*auditv1.Record, 0, e.opts.BatchSize)
	for {
		select {
		case r := <-e.queue:
			batch = append(batch, r)
			if len(batch) < e.opts.BatchSize {
				continue
			}
		case <-tick.C:
		case <-e.stop:
			for {
				select {
				case r := <-e.queue:
					batch = append(batch, r)
					if len(batch) == e.opts.BatchSize {
						e.send(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			e.send(batch)
			return
		}
		e.send(batch)
		batch = batch[:0]
	}
}

// send exports batch as one request.
func (e *Exporter) send(batch []*auditv1.Record) {
	if len(batch) == 0 {
		return
	}
	ctx := context.Background()
	for _, r := range batch {
		e.logger.Emit(ctx, logRecord(r))
	}
	recs := e.collect.take()
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	if err := e.exp.Export(ctx, recs); err != nil {
		e.failed.Add(uint64(len(recs)))
		// At most one warning a minute: a collector that is down would
		// otherwise fill the log.
		now := time.Now().UnixNano()
		if last := e.lastWarn.Load(); now-last > int64(time.Minute) && e.lastWarn.CompareAndSwap(last, now) {
			e.log.Warn("audit records could not be exported over OTLP; they stay in the audit log and the control plane", "records", len(recs), "err", err)
		}
		return
	}
	e.exported.Add(uint64(len(recs)))
}

// logRecord describes r as an OpenTelemetry log record.
func logRecord(r *auditv1.Record) otellog.Record {
	var lr otellog.Record
	lr.SetTimestamp(r.GetTime().AsTime())
	lr.SetObservedTimestamp(time.Now())
	lr.SetEventName("portcullis.audit.record")
	switch r.GetOutcome() {
	case "ok":
		lr.SetSeverity(otellog.SeverityInfo)
	case "refused":
		lr.SetSeverity(otellog.SeverityWarn)
	default:
		lr.SetSeverity(otellog.SeverityError)
	}
	lr.SetSeverityText(r.GetOutcome())
	lr.SetBody(attribute.StringValue(Summary(r)))
	kv := []attribute.KeyValue{
		attribute.String("portcullis.audit.dataplane", r.GetDataplane()),
		attribute.Int64("portcullis.audit.sequence", int64(r.GetSequence())),
		attribute.String("portcullis.audit.protocol", r.GetProtocol()),
		attribute.String("portcullis.audit.method", r.GetMethod()),
		attribute.String("portcullis.audit.outcome", r.GetOutcome()),
		attribute.String("portcullis.audit.mode", r.GetMode()),
		attribute.Int64("portcullis.audit.snapshot_version", int64(r.GetSnapshotVersion())),
		attribute.Float64("portcullis.audit.latency_ms", float64(r.GetLatency().AsDuration())/1e6),
		attribute.Bool("portcullis.audit.upstream_error", r.GetUpstreamError()),
		attribute.Int64("portcullis.audit.response_bytes", r.GetResponseBytes()),
		attribute.String("portcullis.audit.hash", hex.EncodeToString(r.GetHash())),
		attribute.String("portcullis.audit.prev_hash", hex.EncodeToString(r.GetPrevHash())),
	}
	for _, s := range []struct{ key, v string }{
		{"portcullis.audit.agent", r.GetAgent()},
		{"portcullis.audit.user", r.GetUser()},
		{"portcullis.audit.upstream", r.GetUpstream()},
		{"portcullis.audit.tool", r.GetTool()},
		{"portcullis.audit.target_own", r.GetTargetOwn()},
		{"portcullis.audit.decision", r.GetDecision()},
		{"portcullis.audit.reason", r.GetReason()},
		{"portcullis.audit.source_ip", r.GetSourceIp()},
		{"portcullis.audit.arguments_json", r.GetArgumentsJson()},
	} {
		if s.v != "" {
			kv = append(kv, attribute.String(s.key, s.v))
		}
	}
	if r.GetUpstreamLatency() != nil {
		kv = append(kv, attribute.Float64("portcullis.audit.upstream_latency_ms", float64(r.GetUpstreamLatency().AsDuration())/1e6))
	}
	if len(r.GetPolicies()) > 0 {
		kv = append(kv, attribute.StringSlice("portcullis.audit.policies", r.GetPolicies()))
	}
	lr.AddAttributes(kv...)
	return lr
}

// Summary is the one-line body of r's log record, e.g.
// "mcp tools/call weather__get_weather by ops-agent: ok (allow)".
func Summary(r *auditv1.Record) string {
	s := r.GetProtocol() + " " + r.GetMethod()
	if r.GetTool() != "" {
		s += " " + r.GetTool()
	}
	if r.GetAgent() != "" {
		s += " by " + r.GetAgent()
	}
	if r.GetUser() != "" {
		s += " for " + r.GetUser()
	}
	s += ": " + r.GetOutcome()
	switch {
	case r.GetReason() != "":
		s += " (" + r.GetReason() + ")"
	case r.GetDecision() != "":
		s += " (" + r.GetDecision() + ")"
	}
	return s
}

// collector is the provider's processor: it keeps what Emit hands it until
// send takes the batch. Emit and take run on the exporter's goroutine only.
type collector struct {
	mu   sync.Mutex
	recs []sdklog.Record
}

var _ sdklog.Processor = (*collector)(nil)

func (c *collector) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

func (c *collector) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}

func (c *collector) take() []sdklog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.recs
	c.recs = nil
	return out
}

func (c *collector) Shutdown(context.Context) error   { return nil }
func (c *collector) ForceFlush(context.Context) error { return nil }
