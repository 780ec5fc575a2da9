package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/auditotlp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/auditredact"
	"github.com/portcullis-gw/portcullis/internal/dataplane/auditupload"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/drift"
	"github.com/portcullis-gw/portcullis/internal/dataplane/highwater"
	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/limit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/lkg"
	"github.com/portcullis-gw/portcullis/internal/dataplane/metrics"
	"github.com/portcullis-gw/portcullis/internal/dataplane/mode"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	"github.com/portcullis-gw/portcullis/internal/dataplane/ratelimit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/refusals"
	"github.com/portcullis-gw/portcullis/internal/dataplane/rolloutcount"
	"github.com/portcullis-gw/portcullis/internal/dataplane/spans"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/tracing"
)

// UserTokenHeader carries the token of the user an agent acts for (a JWT
// from an identity source used for users), never a bare user name.
const UserTokenHeader = "Portcullis-User-Token" //nolint:gosec // a header name, not a credential

// Server is a running data plane.
type Server struct {
	cfg     Config
	log     *slog.Logger
	current atomic.Pointer[config.Compiled]
	tracker *mode.Tracker
	store   *lkg.Store
	sync    *syncclient.Client
	drift   *drift.Checker
	audit   audit.Writer
	// auditLog is audit as the log it is: it also keeps the highest
	// configuration version this data plane applied.
	auditLog *audit.Log
	export   *auditotlp.Exporter // nil without --audit-otlp-endpoint
	upload   *auditupload.Uploader
	metrics  *metrics.Metrics
	// refusals summarizes refusals of unidentified callers in the audit
	// log.
	refusals *refusals.Recorder
	// budgets enforces budgets fleet-wide with slices leased from the
	// control-plane leader (the Limit stage's reserver), configured from
	// each snapshot it serves.
	budgets *limit.Fleet
	// rateLimits enforces rate limits with capacity leased from the
	// control-plane leader (the Limit stage's first part).
	rateLimits *ratelimit.Limiter
	// rollouts counts the calls of a staged policy rollout and writes
	// the counts to the audit log.
	rollouts *rolloutcount.Recorder
	// traces exports the calls' spans; nil when tracing is off.
	traces *tracing.Provider
	handle pipeline.Handler
	// protocols are the protocols this data plane brokers (see
	// protocols()).
	protocols []protocol.Protocol
	// classifier asks inspection rules' classifier services.
	classifier *inspect.ClassifierClient
	closing    bool // under applyMu: the protocols were stopped
	// applied is the highest snapshot version this data plane has applied
	// (its high-water mark; zero for none), under applyMu. It starts as
	// the audit log's record of it and moves only forward.
	applied highwater.Version
	applyMu sync.Mutex

	http   *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Start brings the data plane up: it loads the last-known-good snapshot (if
// any, serving it in degraded mode until a control plane answers), starts
// the sync client and serves agents. It returns once the listener is open.
func Start(ctx context.Context, cfg Config) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("dataplane", cfg.Credential.Name)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	store, err := lkg.Open(cfg.DataDir, cfg.Credential.StorageKey())
	if err != nil {
		return nil, err
	}
	// The OTLP export, when configured, gets each record once it is
	// committed to the local log, beside the calls.
	var export *auditotlp.Exporter
	var onCommit func(*auditv1.Record)
	if cfg.AuditOTLPEndpoint != "" {
		export, err = auditotlp.New(auditotlp.Options{
			Endpoint: cfg.AuditOTLPEndpoint, Dataplane: cfg.Credential.Name, Logger: log.With("component", "auditotlp"),
		})
		if err != nil {
			return nil, err
		}
		onCommit = export.Enqueue
		defer func() {
			if s == nil {
				_ = export.Close(ctx)
			}
		}()
	}
	aw, err := audit.Open(audit.Options{
		Dir:      filepath.Join(cfg.DataDir, "audit"),
		Async:    cfg.AuditAsync,
		Logger:   log.With("component", "audit"),
		OnCommit: onCommit,
	})
	if err != nil {
		return nil, err
	}
	redactor, err := auditredact.New(cfg.AuditRedact)
	if err != nil {
		_ = aw.Close()
		return nil, err
	}
	auditStage := stages.Audit{Writer: aw, Dataplane: cfg.Credential.Name, Now: time.Now, Redactor: redactor}
	traces, err := tracing.New(ctx, cfg.Tracing, tracing.Options{
		Service: "portcullis-dataplane", Instance: cfg.Credential.Name, Logger: log,
	})
	if err != nil {
		_ = aw.Close()
		return nil, err
	}
	s = &Server{
		cfg: cfg, log: log, store: store, audit: aw, auditLog: aw, export: export, traces: traces,
		tracker: mode.NewTracker(cfg.DegradedAfter, cfg.MaxStale, time.Now),
	}
	s.metrics = metrics.New(s.tracker.Mode, s.servingVersion)
	if export != nil {
		if err := s.metrics.Register(exportMetrics(export)...); err != nil {
			_ = aw.Close()
			return nil, err
		}
	}
	lost := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_dataplane_audit_lost_total",
		Help: "Calls whose audit record could not be written (refused, or answered with --audit-fail-open).",
	})
	if err := s.metrics.Register(lost); err != nil {
		_ = aw.Close()
		return nil, err
	}
	// Refusals of callers no agent was identified for are summarized per
	// source network and interval instead of recorded one by one.
	s.refusals = refusals.New(refusals.Options{Writer: aw, Dataplane: cfg.Credential.Name, Logger: log.With("component", "refusals")})
	s.rollouts = rolloutcount.New(rolloutcount.Options{
		Writer: aw, Dataplane: cfg.Credential.Name, Interval: cfg.RolloutSummaryInterval,
		Mode: func() string { return pipeline.ModeName(s.tracker.Mode()) }, Logger: log.With("component", "rollout"),
	})
	auditStage.FailOpen = cfg.AuditFailOpen
	auditStage.OnLost = func(err error) {
		lost.Inc()
		log.Error("an audit record could not be written", "fail_open", cfg.AuditFailOpen, "err", err)
	}
	protos := protocols(protocol.Deps{
		Logger: log, Backend: s, HopID: cfg.Credential.Name, Observer: s.metrics, UpstreamHTTP1: cfg.UpstreamHTTP1,
		Anonymous: edgeRefusals{rec: s.refusals, m: s.metrics}, AuthorizationServers: s.AuthorizationServers,
	})
	s.protocols = protos
	defer func() {
		if s == nil { // Start failed
			stopProtocols(protos)
		}
	}()
	// Drift detection quarantines pinned tools whose upstream changed them
	// after approval; Begin hands it to every call.
	s.drift = drift.New(drift.Options{Lister: protocol.Lister(s.protocols), Current: s.driftConfig, Logger: log})
	// One pipeline for every protocol and operation; each protocol's
	// forwarder is its terminal. Each stage's own time and the upstream
	// call's go to portcullis_dataplane_stage_seconds. With tracing on,
	// each call runs in a server span, each stage that cost anything gets
	// a span of its own, and the upstream call a client span (package
	// spans).
	observe := s.metrics.ObserveStage
	// Runtime inspection's classifier client keeps its verdicts across
	// configuration versions.
	s.classifier = inspect.NewClassifierClient(time.Now)
	tracer := traces.Tracer(spans.Scope)
	terminal := pipeline.TimedHandler(observe, "forward", protocol.Forwarder(s.protocols))
	front := []pipeline.Stage{metricsStage{m: s.metrics}}
	if tracer != nil {
		terminal = spans.Forward(tracer, terminal)
		front = append([]pipeline.Stage{spans.Stage{Tracer: tracer}}, front...)
	}
	s.budgets = limit.NewFleet(time.Now, s.metrics)
	s.rateLimits = ratelimit.New(time.Now, s.metrics)
	s.handle = pipeline.Chain(terminal, append(front,
		pipeline.Traced(observe, tracer, cfg.Tracing.StageMin, stages.Default(stages.Options{
			Audit: auditStage, Anonymous: s.refusals, Rollout: s.rollouts,
			Limit:   []pipeline.Stage{ratelimit.Stage{Limiter: s.rateLimits}, limit.Stage{Reserver: s.budgets}},
			Inspect: stages.Inspect{Classifier: s.classifier},
		})...)...)...)
	s.loadLastKnownGood(ctx)

	s.sync, err = syncclient.New(syncclient.Config{
		URLs: cfg.ControlPlanes, Credential: cfg.Credential, Dev: cfg.Dev,
		Applier: s, OnContact: s.tracker.Contact, Logger: log,
		Quarantines: s.drift.Quarantines, Rollout: s.servingRollout,
	})
	if err != nil {
		_ = aw.Close()
		return nil, err
	}

	// The uploader runs beside the calls: they wait only for the local log.
	s.upload, err = auditupload.New(auditupload.Config{
		URLs: cfg.ControlPlanes, Credential: cfg.Credential, Dev: cfg.Dev, Log: aw, Logger: log,
	})
	if err != nil {
		_ = aw.Close()
		return nil, err
	}
	s.budgets.SetAuditMarks(auditMarks{log: s.auditLog, upload: s.upload})
	if err := s.metrics.Register(uploadMetrics(s.upload)...); err != nil {
		_ = aw.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	for _, p := range s.protocols {
		for _, e := range p.Endpoints {
			mux.Handle(e.Pattern, e.Handler)
		}
	}
	mux.Handle("/metrics", s.metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", s.readyz)
	tlsConfig, err := listenerTLS(cfg)
	if err != nil {
		_ = aw.Close()
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		_ = aw.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(8)
	go func() {
		defer s.done.Done()
		s.rateLimits.Run(runCtx, cfg.Credential.Name, s.sync.Lease)
	}()
	go func() {
		defer s.done.Done()
		s.budgets.Run(runCtx, cfg.Credential.Name, limit.Sender(s.sync.Lease))
	}()
	go func() {
		defer s.done.Done()
		_ = s.upload.Run(runCtx)
	}()
	go func() {
		defer s.done.Done()
		s.rollouts.Run(runCtx)
	}()
	go func() {
		defer s.done.Done()
		s.refusals.Run(runCtx)
	}()
	go func() {
		defer s.done.Done()
		s.drift.Run(runCtx)
	}()
	s.drift.Reconcile() // a last-known-good configuration's upstreams
	go func() {
		defer s.done.Done()
		serve := func() error { return s.http.Serve(ln) }
		if tlsConfig != nil {
			// The certificate is in TLSConfig; ServeTLS adds h2.
			serve = func() error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "err", err)
		}
	}()
	go func() {
		defer s.done.Done()
		_ = s.sync.Run(runCtx)
	}()
	if tlsConfig == nil && cfg.PlaintextListen && !loopbackListen(cfg.Listen) {
		log.Warn("serving plain HTTP on a non-loopback address (--plaintext-listen): agents' credentials and arguments cross the network unencrypted", "listen", ln.Addr().String())
	}
	log.Info("data plane serving", "listen", ln.Addr().String(), "tls", tlsConfig != nil, "control_planes", cfg.ControlPlanes, "mode", pipeline.ModeName(s.tracker.Mode()))
	return s, nil
}

// listenerTLS is the listener's TLS configuration, nil for plain HTTP: TLS
// 1.3 only, h2 and http/1.1, client certificates requested but neither
// required nor verified here. The trust anchors for agents' certificates
// come with each snapshot, so the Authenticate stage verifies them per
// call; a client without a certificate can still use an API key or a JWT.
func listenerTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2", "http/1.1"},
		ClientAuth:   tls.RequestClientCert,
	}, nil
}

// Addr is the bound listen address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetricNames lists the data plane's own Prometheus metric names.
func (s *Server) MetricNames() []string { return s.metrics.Names() }

// Close stops serving and syncing.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.applyMu.Lock()
	if !s.closing {
		s.closing = true
		for _, p := range s.protocols {
			if p.Stop != nil {
				p.Stop() // ends long-lived streams, which Shutdown would wait for
			}
		}
	}
	s.applyMu.Unlock()
	err := s.http.Shutdown(ctx)
	s.cancel()
	s.done.Wait()
	s.drift.Stop()
	closeProtocols(s.protocols)
	s.classifier.Close()
	if aerr := s.audit.Close(); aerr != nil && err == nil {
		err = aerr
	}
	if s.export != nil {
		_ = s.export.Close(ctx)
	}
	_ = s.traces.Shutdown(ctx) // exports the spans still queued
	return err
}

// stopProtocols stops and closes ps (a Start that failed).
func stopProtocols(ps []protocol.Protocol) {
	for _, p := range ps {
		if p.Stop != nil {
			p.Stop()
		}
	}
	closeProtocols(ps)
}

// closeProtocols closes ps' upstream connections.
func closeProtocols(ps []protocol.Protocol) {
	for _, p := range ps {
		if p.Close != nil {
			_ = p.Close()
		}
	}
}

// loadLastKnownGood serves the snapshot on disk, if it is intact and not
// older than what this data plane already applied, before any control plane
// answers (degraded until one does). A refused file serves nothing: the
// data plane stays starting until a control plane sends a snapshot.
func (s *Server) loadLastKnownGood(ctx context.Context) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.applied = highwater.FromRecord(s.auditLog.Applied())
	if !s.applied.IsZero() {
		s.log.Info("highest configuration version applied before (from the audit log)",
			"cluster", s.applied.Cluster, "epoch", s.applied.Epoch, "version", s.applied.Number)
	}
	version, data, err := s.store.Load()
	switch {
	case errors.Is(err, lkg.ErrNotFound):
		s.log.Info("no last-known-good snapshot on disk; waiting for a control plane")
		return
	case err != nil:
		s.log.Error("last-known-good snapshot refused; waiting for a control plane", "err", err)
		return
	}
	c, err := config.Compile(data)
	if err != nil {
		s.log.Error("last-known-good snapshot does not validate; waiting for a control plane", "version", version, "err", err)
		return
	}
	v := highwater.Of(c.Snapshot())
	if err := highwater.FromDisk(s.applied, v); err != nil {
		s.log.Error("last-known-good snapshot refused: older than, or unrelated to, the version this data plane applied; serving nothing until a control plane answers",
			"epoch", v.Epoch, "version", v.Number, "applied_epoch", s.applied.Epoch, "applied_version", s.applied.Number, "err", err)
		return
	}
	s.recordApplied(ctx, v)
	s.budgets.Configure(c.Budgets())
	s.rateLimits.Configure(c.RateLimits())
	s.current.Store(c)
	s.tracker.Loaded(c.VersionTime(), true)
	s.log.Warn("serving the last-known-good snapshot from disk in degraded mode until a control plane answers", "version", c.Version(), "epoch", v.Epoch)
}

// recordApplied raises the high-water mark to v (never lowers it),
// recording it in the audit log first when it is new. applyMu must be
// held. A failure to record is logged, not returned: the data plane must
// still take a newer configuration (it may revoke access), and the audit
// log that failed refuses calls anyway.
func (s *Server) recordApplied(ctx context.Context, v highwater.Version) {
	if !s.applied.IsZero() && v.Compare(s.applied) <= 0 {
		return
	}
	rec := audit.AppliedRecord(s.cfg.Credential.Name, pipeline.ModeName(s.tracker.Mode()), v.Record(), time.Now())
	if err := s.audit.Write(context.WithoutCancel(ctx), rec); err != nil {
		s.log.Error("could not record the applied configuration version in the audit log; after a restart an older last-known-good file would not be recognised as older",
			"epoch", v.Epoch, "version", v.Number, "err", err)
	}
	s.applied = v
}

// driftConfig is the serving configuration for drift detection, nil
// while there is none.
func (s *Server) driftConfig() drift.Config {
	if c := s.current.Load(); c != nil {
		return c
	}
	return nil
}

func (s *Server) servingVersion() uint64 {
	if c := s.current.Load(); c != nil {
		return c.Version()
	}
	return 0
}

// serving is the version in service, zero for none.
func (s *Server) serving() highwater.Version {
	if c := s.current.Load(); c != nil {
		return highwater.Of(c.Snapshot())
	}
	return highwater.Version{}
}

// Apply implements syncclient.Applier: validate completely, check that the
// version does not go back (same cluster; a newer epoch, or the same or a
// newer version in this one), record it as applied, then swap atomically.
// A rejected snapshot leaves the previous one serving.
func (s *Server) Apply(ctx context.Context, data []byte) (syncclient.Version, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	// The version served shares what did not change with the new one:
	// compiling costs the change, and both hold one copy of the rest.
	prev := s.current.Load()
	if prev != nil {
		// Collect first, so that the compile's garbage and the new
		// version's parts fit under the heap goal the served version
		// set: a swap then does not raise the process's peak memory
		// (docs/performance.md, "Snapshot scale"). One collection per
		// version; versions are admin writes.
		runtime.GC()
	}
	c, err := config.Compile(data, config.Reusing(prev))
	if err != nil {
		s.metrics.Snapshot(false)
		s.log.Error("snapshot rejected; the previous one keeps serving", "serving", s.servingVersion(), "err", err)
		return syncclient.Version{}, err
	}
	v := highwater.Of(c.Snapshot())
	offered := syncclient.Version{Epoch: v.Epoch, Number: v.Number}
	if err := highwater.FromStream(s.applied, v); err != nil {
		s.metrics.Snapshot(false)
		s.log.Warn("snapshot rejected: it would take this data plane back; the previous one keeps serving",
			"epoch", v.Epoch, "version", v.Number, "applied_epoch", s.applied.Epoch, "applied_version", s.applied.Number, "err", err)
		return offered, err
	}
	if cur := s.current.Load(); cur != nil && highwater.Of(cur.Snapshot()) == v {
		return offered, nil // already serving it
	}
	s.recordApplied(ctx, v)
	// The file is written before the version serves, so that what is on
	// disk is never older than what was served (a restart serves it).
	if err := s.store.Save(c.Version(), data); err != nil {
		s.log.Error("could not write the last-known-good snapshot; serving it anyway", "version", c.Version(), "err", err)
	}
	s.budgets.Configure(c.Budgets())
	s.rateLimits.Configure(c.RateLimits())
	s.current.Store(c)
	s.tracker.Loaded(c.VersionTime(), false)
	s.metrics.Snapshot(true)
	s.drift.Reconcile() // an approval may lift a quarantine; new pins get checked
	if !s.closing {
		for _, p := range s.protocols {
			if p.Configured != nil {
				p.Configured(c)
			}
		}
	}
	s.log.Info("snapshot applied", "version", c.Version(), "epoch", v.Epoch)
	return offered, nil
}

// servingRollout is the policy rollout the serving version stages, for
// the status reports: its id, stage and canary share.
func (s *Server) servingRollout() syncclient.Rollout {
	if cur := s.current.Load(); cur != nil {
		if ro := cur.Rollout(); ro != nil {
			return syncclient.Rollout{ID: ro.ID(), Stage: ro.Stage(), BasisPoints: ro.CanaryBasisPoints()}
		}
	}
	return syncclient.Rollout{}
}

// Serving implements syncclient.Applier.
func (s *Server) Serving() (syncclient.Version, configsyncv1.Mode) {
	v := s.serving()
	return syncclient.Version{Epoch: v.Epoch, Number: v.Number}, s.tracker.Mode()
}

// AuthorizationServers lists the issuers of the identity sources agents
// may authenticate with (protocol.Deps.AuthorizationServers).
func (s *Server) AuthorizationServers() []string {
	cur := s.current.Load()
	if cur == nil {
		return nil
	}
	var out []string
	for _, src := range cur.Snapshot().GetIdentitySources() {
		j := src.GetJwtIssuer()
		if j != nil && (j.GetUse() == configv1.JwtUse_JWT_USE_AGENTS || j.GetUse() == configv1.JwtUse_JWT_USE_BOTH) {
			out = append(out, j.GetIssuer())
		}
	}
	return out
}

// Begin implements protocol.Backend.
func (s *Server) Begin(r *http.Request) *pipeline.Call {
	c := &pipeline.Call{Start: time.Now(), Mode: s.tracker.Mode(), Quarantine: s.drift,
		// On-behalf-of: the agent forwards the user's own token; the
		// Authenticate stage verifies it against a trusted issuer.
		UserToken: r.Header.Get(UserTokenHeader)}
	if cur := s.current.Load(); cur != nil {
		c.Config = cur
		c.Rollout = cur.Rollout()
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.SourceIP = ap.Addr()
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		// Unverified: Authenticate checks them against c.Config.
		c.PeerCertificates = r.TLS.PeerCertificates
	}
	if s.traces != nil {
		// The caller's trace context; a protocol's own carrier (MCP's
		// params._meta) replaces it.
		c.Trace = &pipeline.TraceContext{Parent: r.Header.Get("Traceparent"), State: r.Header.Get("Tracestate")}
	}
	return c
}

// Run implements protocol.Backend: the one pipeline.
func (s *Server) Run(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	return s.handle(ctx, c)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	m := s.tracker.Mode()
	body, _ := json.Marshal(map[string]any{
		"mode":          pipeline.ModeName(m),
		"version":       s.servingVersion(),
		"epoch":         s.serving().Epoch,
		"control_plane": s.sync.Connected(),
		"last_contact":  s.tracker.LastContact(),
		// Local records the control plane has not acknowledged yet.
		"audit_upload_lag": s.upload.Lag(),
	})
	w.Header().Set("Content-Type", "application/json")
	if m != configsyncv1.Mode_MODE_NORMAL && m != configsyncv1.Mode_MODE_DEGRADED {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(append(body, '\n'))
}

// edgeRefusals counts an anonymous request a protocol endpoint refused
// before it became a call: in metrics, and in the audit summary.
type edgeRefusals struct {
	rec *refusals.Recorder
	m   *metrics.Metrics
}

func (e edgeRefusals) Refused(protocolName string, src netip.Addr, reason string) {
	e.m.Refused(protocolName, pipeline.Reason(reason))
	e.rec.Refused(src, reason)
}

// metricsStage counts every call and refusal.
type metricsStage struct{ m *metrics.Metrics }

func (metricsStage) Name() string { return "metrics" }

func (st metricsStage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	res, err := next(ctx, c)
	var ref *pipeline.Refusal
	if err != nil && errors.As(err, &ref) {
		st.m.Call(c.Protocol, ref, nil)
	} else {
		st.m.Call(c.Protocol, nil, err)
	}
	return res, err
}

// auditMarks tells the budgets how far this data plane's audit records
// reached the control plane.
type auditMarks struct {
	log    *audit.Log
	upload *auditupload.Uploader
}

func (m auditMarks) Durable() uint64 { return m.log.Durable() }
func (m auditMarks) Acked() uint64   { return m.upload.Acked() }
