// Package metrics holds a control-plane node's Prometheus metrics: whether
// it leads and is ready, the config version it serves, each data plane's
// config lag, connection and last contact as this node sees them, and the
// stage of the policy rollout in progress. Everything is read from the
// node's own state at scrape time, so nothing on a write or a stream pays
// for it. It owns its registry (no global state).
//
// /metrics needs a bearer admin token of role auditor or above, like the
// admin API's reads: the series name data planes and policy sets.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/promnames"
)

// Source is what the metrics read, each at scrape time. Every function
// must be safe for concurrent use.
type Source struct {
	// State is the node's applied state.
	State func() *state.State
	// Leader reports whether this node does the cluster's singleton work.
	Leader func() bool
	// Ready reports what /readyz says.
	Ready func() bool
	// Dataplanes are the statuses of the data planes that talk to this
	// node (configsync.Registry.List).
	Dataplanes func() []*adminv1.DataplaneStatus
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Metrics is a node's metric set.
type Metrics struct {
	reg *prometheus.Registry
}

// New registers the metrics of src.
func New(src Source) *Metrics {
	if src.Now == nil {
		src.Now = time.Now
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src: src}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Metrics{reg: reg}
}

// Names lists the node's own metric names (portcullis_*), whether or not
// they have series now (docs/metrics.md documents each).
func (m *Metrics) Names() []string { return promnames.Names(m.reg, "portcullis_") }

// Authenticator verifies a request's Authorization header
// (tokenauth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (tokenauth.Token, error)
}

// Handler serves /metrics to callers with a token of role auditor or above.
func (m *Metrics) Handler(auth Authenticator) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
		switch {
		case errors.Is(err, tokenauth.ErrCannotVerify):
			http.Error(w, "this node cannot verify the token right now; retry, or scrape another node", http.StatusServiceUnavailable)
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis"`)
			http.Error(w, "send an admin token of role auditor or above: Authorization: Bearer <token> (Prometheus: authorization.credentials_file)", http.StatusUnauthorized)
			return
		case !tokenauth.Allows(tok.Role, configv1.Role_ROLE_AUDITOR):
			http.Error(w, "the token's role may not read metrics: use an auditor, operator or admin token", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

var (
	descLeader = prometheus.NewDesc("portcullis_controlplane_leader",
		"1 when this node does the cluster's singleton work (Raft leader or etcd-elected), else 0.", nil, nil)
	descReady = prometheus.NewDesc("portcullis_controlplane_ready",
		"1 when this node serves (as /readyz), else 0.", nil, nil)
	descVersion = prometheus.NewDesc("portcullis_controlplane_config_version",
		"The config (snapshot) version of this node's applied state.", nil, nil)
	descConnected = prometheus.NewDesc("portcullis_controlplane_dataplane_connected",
		"1 while the data plane's config stream to this node is open, else 0; one series per data plane that talked to this node.", []string{"dataplane"}, nil)
	descLag = prometheus.NewDesc("portcullis_controlplane_dataplane_config_lag",
		"Config versions the data plane's serving snapshot is behind this node's (0 when current; at least 1 from an earlier epoch).", []string{"dataplane"}, nil)
	descLastSeen = prometheus.NewDesc("portcullis_controlplane_dataplane_last_seen_seconds",
		"Seconds since this node last heard from the data plane.", []string{"dataplane"}, nil)
	descStage = prometheus.NewDesc("portcullis_controlplane_rollout_stage",
		"The stage of the policy rollout in progress: 1 shadow, 2 canary; no series when none is.", []string{"policy_set", "rollout"}, nil)
	descCanary = prometheus.NewDesc("portcullis_controlplane_rollout_canary_basis_points",
		"The share of agents, in basis points, the rollout in progress lets its candidate decide for (0 in shadow).", []string{"policy_set", "rollout"}, nil)
)

type collector struct{ src Source }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descReady, descVersion, descConnected, descLag, descLastSeen, descStage, descCanary} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descLeader, boolean(c.src.Leader()))
	gauge(descReady, boolean(c.src.Ready()))
	st := c.src.State()
	if st == nil {
		return
	}
	gauge(descVersion, float64(st.ConfigVersion()))
	now := c.src.Now()
	for _, dp := range c.src.Dataplanes() {
		gauge(descConnected, boolean(dp.GetConnected()), dp.GetName())
		gauge(descLag, float64(Lag(st, dp)), dp.GetName())
		if t := dp.GetLastSeen(); t != nil {
			gauge(descLastSeen, max(now.Sub(t.AsTime()).Seconds(), 0), dp.GetName())
		}
	}
	if r, ok := st.ActiveRollout(); ok {
		set, id := r.GetPolicySet(), r.GetMeta().GetName()
		gauge(descStage, float64(r.GetStage()), set, id)
		var bp uint32
		if steps := r.GetPlan().GetCanaryBasisPoints(); r.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_CANARY && int(r.GetCanaryStep()) < len(steps) {
			bp = steps[r.GetCanaryStep()]
		}
		gauge(descCanary, float64(bp), set, id)
	}
}

// Lag is how many config versions dp's serving snapshot is behind st: 0
// when current, at least 1 when it is from an earlier epoch (whatever its
// number says), as gwctl dataplane list shows it.
func Lag(st *state.State, dp *adminv1.DataplaneStatus) uint64 {
	var lag uint64
	if v := st.ConfigVersion(); v > dp.GetServingVersion() {
		lag = v - dp.GetServingVersion()
	}
	if e := dp.GetServingEpoch(); e != 0 && e < st.Epoch() {
		lag = max(lag, 1)
	}
	return lag
}

func boolean(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
