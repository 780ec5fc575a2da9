package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/alerting"
	"github.com/portcullis-gw/portcullis/internal/controlplane/alertsend"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/introspect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/learn"
	"github.com/portcullis-gw/portcullis/internal/controlplane/lease"
	"github.com/portcullis-gw/portcullis/internal/controlplane/metrics"
	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/rollout"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/singleton"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	"github.com/portcullis-gw/portcullis/internal/controlplane/webui"
)

// backend is what the server needs of its store, whichever it is. Both
// raftstore.Node and etcdstore.Node implement it.
type backend interface {
	store.Store
	// LocalState is this node's applied state.
	LocalState() *state.State
	// Ready says whether the node can serve (see /readyz).
	Ready() bool
	// Leader is the node that does singleton work (Raft's leader, etcd's
	// elected node) and its API address.
	Leader() (id, apiAddr string)
	IsLeader() bool
	Shutdown() error
}

var (
	_ backend = (*raftstore.Node)(nil)
	_ backend = (*etcdstore.Node)(nil)
)

// opened is a store brought up by Start, with what the rest of the node
// takes from it.
type opened struct {
	b       backend
	cluster adminapi.Cluster
	// leader serves the node-to-node API's leader-only calls.
	leader peer.Leader
	// audit hands out copies of the audit store (nil: none).
	audit      peer.AuditSource
	apiTLS     *tls.Config
	peerClient *peer.Client
	elector    singleton.Elector
	jobs       []singleton.Job
	// after runs once the API serves (Raft's bootstrap and join).
	after func(ctx context.Context, s *Server) error
	// fatal is closed when the store stopped for good (nil: never).
	fatal <-chan struct{}
	// describe is the store's part of the "serving" log line.
	describe []any
}

// Server is a running control-plane node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	b      backend
	raft   *raftstore.Node // nil on etcd
	etcd   *etcdstore.Node // nil on Raft
	http   *http.Server
	ln     net.Listener
	served chan error
	// cancelStreams ends long-lived handler contexts and the node's
	// background work on Close.
	cancelStreams context.CancelFunc
	audit         *auditstore.Store
	metrics       *metrics.Metrics
	retentionDone chan struct{}
	versionDone   chan struct{}
	singletonDone chan struct{}
}

// DevKEKFile is the key-encryption key --dev creates in the data directory
// when it is given none.
const DevKEKFile = "kek"

// loadKEK loads the key-encryption key the operator gave (--kek-file or
// PORTCULLIS_KEK). Without one, a --dev node that bootstraps a new cluster
// creates a key in its data directory (and says so), and uses that file on
// later starts: a local experiment needs no key management. Production
// nodes, and a --dev node joining a cluster (which must share the
// cluster's key), still require one.
func loadKEK(cfg Config, fresh bool, log *slog.Logger) (*seal.Sealer, error) {
	if cfg.KEKFile != "" || cfg.KEK != "" || !cfg.Dev {
		return seal.LoadKey(cfg.KEKFile, cfg.KEK)
	}
	path := filepath.Join(cfg.DataDir, DevKEKFile)
	switch _, err := os.Stat(path); {
	case err == nil:
		log.Info("--dev: using the key-encryption key in the data directory", "file", path)
	case errors.Is(err, os.ErrNotExist) && fresh && cfg.Bootstrap:
		if err := seal.GenerateKeyFile(path); err != nil {
			return nil, err
		}
		log.Warn("--dev: no key-encryption key given, so one was created in the data directory; it protects this cluster's secrets: keep it with the data. Production nodes share one key given with --kek-file or PORTCULLIS_KEK", "file", path)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w (--dev creates one only for a node that bootstraps a new cluster; a joining node needs the cluster's key)", seal.ErrNoKey)
	default:
		return nil, err
	}
	return seal.LoadKey(path, "")
}

// forwardKeyPurpose derives the node-to-node key from the KEK.
const forwardKeyPurpose = "node-forward-auth"

// webKeyPurpose derives the web view's session key from the KEK: the same
// on every node, so a session works on any of them.
const webKeyPurpose = "webui-session"

// Start brings the node up: it loads the key-encryption key, opens the
// store (Raft, with TLS material created or fetched on first start; or
// etcd, with the cluster found under the prefix), serves the APIs, and
// bootstraps or joins when the node has no state yet. It returns once the
// node serves; ctx bounds only the start itself.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("node", cfg.NodeID)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	fresh := !raftstore.HasState(cfg.DataDir)
	sealer, err := loadKEK(cfg, fresh, log)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	forwardKey := sealer.Derive(forwardKeyPurpose, 32)
	// The audit store sits beside the store's data; the state machine
	// fills it from AppendAudit commands (and from snapshots, or on etcd
	// from a peer's copy).
	audit, err := auditstore.Open(auditstore.Options{
		Dir: filepath.Join(cfg.DataDir, "audit"), Retention: cfg.AuditRetention, MaxBytes: cfg.AuditMaxBytes, SegmentSize: cfg.AuditSegmentSize, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	registry := configsync.NewRegistry(cfg.NodeID, nil)
	var o *opened
	if cfg.Store == StoreEtcd {
		o, err = openEtcd(ctx, cfg, sealer, forwardKey, audit, registry, log)
	} else {
		o, err = openRaft(ctx, cfg, sealer, forwardKey, audit, registry, log)
	}
	if err != nil {
		_ = audit.Close()
		return nil, err
	}
	node := o.b

	// One authenticator for every API of this node: its budget of
	// re-checks for unknown tokens is the node's.
	auth := tokenauth.NewAuthenticator(node, nil)
	api := adminapi.New(adminapi.Config{
		Store: node, Cluster: o.cluster,
		Sealer: sealer, Egress: cfg.Egress, Dev: cfg.Dev, Logger: cfg.Logger,
		Audit: audit, Auth: auth,
	})
	mux := http.NewServeMux()
	// apiMux serves the admin API alone, for the web view's in-process
	// calls.
	apiMux := http.NewServeMux()
	routes := api.Routes()
	for _, r := range routes {
		mux.Handle(r.Path, r.Handler)
		apiMux.Handle(r.Path, r.Handler)
	}
	ui, err := webui.New(webui.Config{
		API: apiMux, Tokens: node, Auth: auth, Recorder: api, Key: sealer.Derive(webKeyPurpose, 32),
		Writes: cfg.WebWrites, Secure: !cfg.Dev, Logger: cfg.Logger,
	})
	if err != nil {
		_ = node.Shutdown()
		_ = audit.Close()
		return nil, err
	}
	mux.Handle(webui.Prefix, ui)
	// Rate-limit leases are granted by the elected node (singleton work
	// below); every node takes data planes' requests and forwards them.
	granter := lease.New(lease.Config{
		Limits: lease.StateLimits(node.LocalState), Duration: cfg.LeaseDuration, Logger: log,
	})
	ps := peer.NewServer(o.leader, registry, forwardKey, !cfg.Dev, cfg.Logger)
	if o.audit != nil {
		ps.ServeAuditCopies(o.audit)
	}
	ps.ServeAuditSegments(audit)
	ps.ServeLeases(granter)
	mux.Handle(ps.Handler())
	syncPath, syncHandler := configsync.NewServer(configsync.Config{
		Store: node, Auth: auth, Builder: configsync.NewBuilder(sealer, configsync.WithEgress(cfg.Egress)), Registry: registry,
		NodeID: cfg.NodeID, Heartbeat: cfg.SyncHeartbeat, Logger: cfg.Logger,
		Leases: &leaseRouter{granter: granter, b: node, peer: o.peerClient},
	}).Handler()
	mux.Handle(syncPath, syncHandler)
	// gRPC reflection and health describe the APIs clients call (the
	// admin and audit services, config sync), not the node-to-node one.
	// A generated service is mounted at its prefix ("/pkg.Service/"); a
	// route of one procedure (the rolling-upgrade test's probe, which has
	// no generated service and no descriptor) is not a service to list.
	services := []string{strings.Trim(syncPath, "/")}
	for _, r := range routes {
		if strings.HasSuffix(r.Path, "/") {
			services = append(services, strings.Trim(r.Path, "/"))
		}
	}
	if err := introspect.Mount(mux, introspect.Config{Services: services, Ready: node.Ready}); err != nil {
		_ = node.Shutdown()
		_ = audit.Close()
		return nil, err
	}
	// /metrics: Prometheus, with an auditor (or higher) token.
	nodeMetrics := metrics.New(metrics.Source{
		State: node.LocalState, Leader: node.IsLeader, Ready: node.Ready, Dataplanes: registry.List,
	})
	mux.Handle("/metrics", nodeMetrics.Handler(auth))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !node.Ready() {
			http.Error(w, "not ready: no leader known yet, or still catching up with the cluster", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})

	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		_ = node.Shutdown()
		_ = audit.Close()
		return nil, fmt.Errorf("listen for the API on %s: %w", cfg.APIAddr, err)
	}
	// Long-lived streams (config sync) and the node's background work end
	// when the server closes: their contexts derive from baseCtx,
	// cancelled in Close.
	baseCtx, cancelStreams := context.WithCancel(context.Background())
	hs := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	if o.apiTLS != nil {
		hs.TLSConfig = o.apiTLS
	} else {
		hs.Protocols = new(http.Protocols)
		hs.Protocols.SetHTTP1(true)
		hs.Protocols.SetUnencryptedHTTP2(true)
	}
	// served holds up to two errors: the server's own end, and a store
	// that stopped for good before it.
	s := &Server{cfg: cfg, log: log, b: node, http: hs, ln: ln, served: make(chan error, 2), cancelStreams: cancelStreams,
		audit: audit, metrics: nodeMetrics, retentionDone: make(chan struct{}), versionDone: make(chan struct{}), singletonDone: make(chan struct{})}
	s.raft, _ = node.(*raftstore.Node)
	s.etcd, _ = node.(*etcdstore.Node)
	go func() {
		defer close(s.retentionDone)
		audit.RunRetention(baseCtx, time.Minute, time.Now)
	}()
	go func() {
		defer close(s.versionDone)
		s.recordVersion(baseCtx)
	}()
	// The rollout controller, the audit consumers (learned lists, alert
	// rules) and alert delivery are singleton work: they run on the
	// elected node (the Raft leader, or the etcd election's winner) and
	// act from replicated state alone (a consumer's cursor, the outbox),
	// so the next one continues where this one left off.
	controller := rollout.New(rollout.Config{
		Store: node, Records: audit, Leader: node, NodeID: cfg.NodeID, Interval: cfg.RolloutInterval, Logger: log,
	})
	consumers := auditconsumer.New(auditconsumer.Config{
		Store: node, Audit: audit, NodeID: cfg.NodeID, Interval: cfg.ConsumerInterval, Logger: log,
		Consumers: []auditconsumer.Consumer{learn.Consumer{}, alerting.New()},
	})
	alerts := alertsend.New(alertsend.Config{
		Store: node, Sealer: sealer, Sender: alertsend.NewSender(cfg.Egress), NodeID: cfg.NodeID, Logger: log,
	})
	jobs := append(slices.Clone(o.jobs),
		singleton.Job{Name: "rollout controller", Run: controller.Run},
		singleton.Job{Name: "audit consumers", Run: consumers.Run},
		singleton.Job{Name: "alert delivery", Run: alerts.Run},
		singleton.Job{Name: "rate-limit leases", Run: granter.Run},
	)
	go func() {
		defer close(s.singletonDone)
		singleton.Run(baseCtx, o.elector, append(jobs, cfg.Singletons...), log)
	}()
	if o.fatal != nil {
		go func() {
			select {
			case <-o.fatal:
				s.served <- fmt.Errorf("the store stopped: %w", s.etcd.Fatal())
			case <-baseCtx.Done():
			}
		}()
	}
	go func() {
		if o.apiTLS != nil {
			s.served <- hs.ServeTLS(ln, "", "")
		} else {
			s.served <- hs.Serve(ln)
		}
	}()

	if o.after != nil {
		if err := o.after(ctx, s); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	if cfg.Dev {
		log.Warn("--dev: the Raft port (if any) is plaintext and UNAUTHENTICATED (anyone who can reach it can join or rewrite the cluster's state), and the API serves plain HTTP; loopback only, never in production",
			"raft", cfg.RaftAdvertise, "api", cfg.APIAdvertise)
	}
	log.Info("control plane node serving", append([]any{"api", cfg.APIAdvertise, "dev", cfg.Dev,
		"web_view", webui.Prefix, "web_writes", cfg.WebWrites}, o.describe...)...)
	return s, nil
}

// Node is the Raft store of this server (nil on etcd).
func (s *Server) Node() *raftstore.Node { return s.raft }

// EtcdNode is the etcd store of this server (nil on Raft).
func (s *Server) EtcdNode() *etcdstore.Node { return s.etcd }

// Store is this server's store, whichever it is.
func (s *Server) Store() store.Store { return s.b }

// IsLeader reports whether this node does the cluster's singleton work.
func (s *Server) IsLeader() bool { return s.b.IsLeader() }

// Restore replaces the cluster's state with a backup, as a new epoch (the
// admin API's RestoreBackup without the Touch after it); on Raft this
// node must be the leader.
func (s *Server) Restore(ctx context.Context, backup []byte) error {
	if s.etcd != nil {
		return s.etcd.Restore(ctx, backup)
	}
	return s.raft.RestoreLocal(ctx, backup)
}

// Handler is the HTTP handler serving every API of the node (for tests
// that drive it without a connection).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// MetricNames lists the node's own Prometheus metric names.
func (s *Server) MetricNames() []string { return s.metrics.Names() }

// Addr is the API's bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done yields the error that ended serving (http.ErrServerClosed after
// Close; the store's error when it stopped for good).
func (s *Server) Done() <-chan error { return s.served }

// Close stops serving and the node's background work, and shuts the store
// down.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.cancelStreams()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	<-s.singletonDone
	<-s.versionDone
	if nerr := s.b.Shutdown(); nerr != nil && err == nil {
		err = nerr
	}
	<-s.retentionDone
	if aerr := s.audit.Close(); aerr != nil && err == nil {
		err = aerr
	}
	return err
}
