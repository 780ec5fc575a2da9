// Package metrics holds the data plane's Prometheus metrics: serving mode,
// snapshot version, snapshot applies and rejections, calls and refusals by
// reason, and each upstream's retries, circuit-breaker changes and
// rejections. It owns its registry (no global state).
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/promnames"
)

// Metrics is the data plane's metric set. Safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	snapshots *prometheus.CounterVec
	calls     *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	stages    *prometheus.HistogramVec

	upstreamRetries  *prometheus.CounterVec
	upstreamBreaker  *prometheus.CounterVec
	upstreamRejected *prometheus.CounterVec

	limitAdmitted *prometheus.CounterVec
	limitRefused  *prometheus.CounterVec
	limitLease    *prometheus.GaugeVec

	budgetAdmitted *prometheus.CounterVec
	budgetRefused  *prometheus.CounterVec
	budgetSafe     *prometheus.CounterVec
	budgetFleet    prometheus.Gauge
}

// New registers the metrics. mode and version are read at scrape time.
func New(mode func() configsyncv1.Mode, version func() uint64) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dataplane_snapshots_total",
			Help: "Snapshots received from the control plane, by result (applied, rejected).",
		}, []string{"result"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dataplane_calls_total",
			Help: "Calls handled, by protocol and outcome (ok, refused, error).",
		}, []string{"protocol", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dataplane_refusals_total",
			Help: "Refused calls by machine-readable reason.",
		}, []string{"reason"}),
		upstreamRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dataplane_upstream_retries_total",
			Help: "Retries sent to an upstream (read-only and idempotent tools only).",
		}, []string{"upstream"}),
		upstreamBreaker: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dataplane_upstream_breaker_transitions_total",
			Help: "Circuit-breaker state changes of an upstream, by the state entered (open, half-open, closed).",
		}, []string{"upstream", "state"}),
		upstreamRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dataplane_upstream_rejected_total",
			Help: "Calls to an upstream refused without reaching it, or retries not sent, by why (breaker_open, concurrency_limit, retry_budget).",
		}, []string{"upstream", "why"}),
	}
	m.limitAdmitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_dataplane_ratelimit_admitted_total",
		Help: "Calls a rate limit admitted, by limit.",
	}, []string{"limit"})
	m.limitRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_dataplane_ratelimit_refused_total",
		Help: "Calls a rate limit refused, by limit and mode (enforce; shadow: would have refused, ran).",
	}, []string{"limit", "mode"})
	m.limitLease = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portcullis_dataplane_ratelimit_lease_rate",
		Help: "Calls per second this data plane may admit under a rate limit, summed over its keys (leases and safe shares).",
	}, []string{"limit"})
	m.budgetAdmitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_dataplane_budget_admitted_total",
		Help: "Calls a budget admitted, by budget and from what (slice: the leader's slice; safe: the safe share without one).",
	}, []string{"budget", "from"})
	m.budgetRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_dataplane_budget_refused_total",
		Help: "Calls a budget refused, by budget and mode (enforce; shadow: would have refused, ran).",
	}, []string{"budget", "mode"})
	m.budgetSafe = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_dataplane_budget_slices_total",
		Help: "Budget slices the leader granted this data plane, by budget.",
	}, []string{"budget"})
	m.budgetFleet = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portcullis_dataplane_budget_fleet_size",
		Help: "Data planes the control-plane leader last counted: budget safe shares divide by it (0: not heard yet, taken as 1).",
	})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "portcullis_dataplane_stage_seconds",
		Help: "Each pipeline stage's own time per call (excluding the stages after it); stage \"forward\" is the upstream call.",
		// 2µs to about 4s, doubling.
		Buckets: prometheus.ExponentialBuckets(2e-6, 2, 22),
	}, []string{"stage"})
	modes := prometheus.NewDesc("portcullis_dataplane_mode", "1 for the mode the data plane is in, 0 for the others.", []string{"mode"}, nil)
	m.reg.MustRegister(m.snapshots, m.calls, m.refusals, m.stages, m.upstreamRetries, m.upstreamBreaker, m.upstreamRejected,
		m.limitAdmitted, m.limitRefused, m.limitLease, m.budgetAdmitted, m.budgetRefused, m.budgetSafe, m.budgetFleet,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portcullis_dataplane_snapshot_version",
			Help: "Version of the snapshot in service (0 = none).",
		}, func() float64 { return float64(version()) }),
		modeCollector{desc: modes, mode: mode},
	)
	for _, r := range pipeline.Reasons {
		m.refusals.WithLabelValues(string(r))
	}
	m.snapshots.WithLabelValues("applied")
	m.snapshots.WithLabelValues("rejected")
	return m
}

// LimitAdmitted counts a call a rate limit admitted.
func (m *Metrics) LimitAdmitted(limit string) { m.limitAdmitted.WithLabelValues(limit).Inc() }

// LimitRefused counts a call a rate limit refused (shadow: would have).
func (m *Metrics) LimitRefused(limit string, shadow bool) {
	mode := "enforce"
	if shadow {
		mode = "shadow"
	}
	m.limitRefused.WithLabelValues(limit, mode).Inc()
}

// LimitLease sets the calls per second this data plane may admit under a
// rate limit, over all its keys.
func (m *Metrics) LimitLease(limit string, perSecond float64) {
	m.limitLease.WithLabelValues(limit).Set(perSecond)
}

// BudgetAdmitted counts a call a budget admitted, from its slice or from
// the safe share.
func (m *Metrics) BudgetAdmitted(budget string, safe bool) {
	from := "slice"
	if safe {
		from = "safe"
	}
	m.budgetAdmitted.WithLabelValues(budget, from).Inc()
}

// BudgetRefused counts a call a budget refused (shadow: would have).
func (m *Metrics) BudgetRefused(budget string, shadow bool) {
	mode := "enforce"
	if shadow {
		mode = "shadow"
	}
	m.budgetRefused.WithLabelValues(budget, mode).Inc()
}

// BudgetSlice counts a slice granted under a budget.
func (m *Metrics) BudgetSlice(budget string) { m.budgetSafe.WithLabelValues(budget).Inc() }

// BudgetFleetSize sets the fleet size budget safe shares divide by.
func (m *Metrics) BudgetFleetSize(n int64) { m.budgetFleet.Set(float64(n)) }

// Snapshot counts a snapshot applied or rejected.
func (m *Metrics) Snapshot(applied bool) {
	if applied {
		m.snapshots.WithLabelValues("applied").Inc()
	} else {
		m.snapshots.WithLabelValues("rejected").Inc()
	}
}

// ObserveStage records one stage's own time for one call (a
// pipeline.StageObserver).
func (m *Metrics) ObserveStage(stage string, self time.Duration) {
	m.stages.WithLabelValues(stage).Observe(self.Seconds())
}

// Call counts a finished call; refusal is nil for calls that were not
// refused (err is then the non-refusal error, if any).
func (m *Metrics) Call(protocol string, refusal *pipeline.Refusal, err error) {
	switch {
	case refusal != nil:
		m.calls.WithLabelValues(protocol, "refused").Inc()
		m.refusals.WithLabelValues(string(refusal.Reason)).Inc()
	case err != nil:
		m.calls.WithLabelValues(protocol, "error").Inc()
	default:
		m.calls.WithLabelValues(protocol, "ok").Inc()
	}
}

// Refused counts a request of protocol refused at the protocol's edge,
// before it became a call (an anonymous request, a bad envelope).
func (m *Metrics) Refused(protocol string, reason pipeline.Reason) {
	m.calls.WithLabelValues(protocol, "refused").Inc()
	m.refusals.WithLabelValues(string(reason)).Inc()
}

// UpstreamRetry counts a retry sent to upstream (a resilience.Observer).
func (m *Metrics) UpstreamRetry(upstream string) { m.upstreamRetries.WithLabelValues(upstream).Inc() }

// UpstreamBreaker counts an upstream's circuit breaker entering state.
func (m *Metrics) UpstreamBreaker(upstream, state string) {
	m.upstreamBreaker.WithLabelValues(upstream, state).Inc()
}

// UpstreamRejected counts a call to upstream refused without reaching it,
// or a retry not sent, and why.
func (m *Metrics) UpstreamRejected(upstream, why string) {
	m.upstreamRejected.WithLabelValues(upstream, why).Inc()
}

// Register adds collectors of other parts of the data plane (the audit
// exporter's counters) to the set.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Names lists the data plane's own metric names (portcullis_*), whether
// or not they have series yet (docs/metrics.md documents each).
func (m *Metrics) Names() []string { return promnames.Names(m.reg, "portcullis_") }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

type modeCollector struct {
	desc *prometheus.Desc
	mode func() configsyncv1.Mode
}

func (c modeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c modeCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.mode()
	for _, m := range []configsyncv1.Mode{configsyncv1.Mode_MODE_STARTING, configsyncv1.Mode_MODE_NORMAL, configsyncv1.Mode_MODE_DEGRADED, configsyncv1.Mode_MODE_STALE} {
		v := 0.0
		if m == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, pipeline.ModeName(m))
	}
}
