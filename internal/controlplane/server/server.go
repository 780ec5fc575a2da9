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
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/alerting"
	"github.com/portcullis-gw/portcullis/internal/controlplane/alertsend"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/learn"
	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
)

// Server is a running control-plane node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	node   *raftstore.Node
	http   *http.Server
	ln     net.Listener
	served chan error
	// cancelStreams ends long-lived handler contexts on Close.
	cancelStreams context.CancelFunc
	audit         *auditstore.Store
	retentionDone chan struct{}
	versionDone   chan struct{}
	leaderDone    chan struct{}
}

// forwardKeyPurpose derives the node-to-node key from the KEK.
const forwardKeyPurpose = "node-forward-auth"

// Start brings the node up: it loads the key-encryption key and TLS
// material (creating or fetching it on first start), opens Raft, serves the
// APIs, and bootstraps or joins when the node has no state yet. It returns
// once the node serves; ctx bounds only the start itself.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("node", cfg.NodeID)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	sealer, err := seal.LoadKey(cfg.KEKFile, cfg.KEK)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	fresh := !raftstore.HasState(cfg.DataDir)
	if fresh && !cfg.Bootstrap && cfg.Join == "" {
		return nil, fmt.Errorf("%s holds no cluster state: start the first node with --bootstrap, or join a cluster with --join", cfg.DataDir)
	}
	if !fresh && (cfg.Bootstrap || cfg.Join != "") {
		log.Info("data dir already holds cluster state; ignoring --bootstrap/--join")
	}

	var boot *bootstrapMaterial
	var mat tlsMaterial
	if fresh && cfg.Bootstrap {
		if boot, err = newBootstrapMaterial(cfg, sealer); err != nil {
			return nil, err
		}
		mat = boot.tls
		if !cfg.Dev {
			if err := saveTLS(cfg.DataDir, mat); err != nil {
				return nil, err
			}
		}
	} else if !cfg.Dev {
		var ok bool
		if mat, ok, err = loadTLS(cfg.DataDir); err != nil {
			return nil, err
		}
		if !ok {
			if !fresh || cfg.Join == "" {
				return nil, fmt.Errorf("%s has cluster state but no TLS material in %s; restore it from a backup of the data dir", cfg.DataDir, tlsDir)
			}
			if mat, err = fetchNodeCertificate(ctx, cfg); err != nil {
				return nil, err
			}
			if err := saveTLS(cfg.DataDir, mat); err != nil {
				return nil, err
			}
		}
	}

	var raftServer, raftClient, apiTLS *tls.Config
	if !cfg.Dev {
		if raftServer, err = pki.PeerServerConfig(mat.certPEM, mat.keyPEM, mat.caPEM); err != nil {
			return nil, fmt.Errorf("raft TLS: %w", err)
		}
		if raftClient, err = pki.PeerClientConfig(mat.certPEM, mat.keyPEM, mat.caPEM); err != nil {
			return nil, fmt.Errorf("raft TLS: %w", err)
		}
		if apiTLS, err = pki.ServerConfig(mat.certPEM, mat.keyPEM, mat.caPEM); err != nil {
			return nil, fmt.Errorf("API TLS: %w", err)
		}
	}
	forwardKey := sealer.Derive(forwardKeyPurpose, 32)
	peerClient := peer.NewClient(raftClient, forwardKey)

	// The audit store sits beside the Raft data; the state machine fills
	// it from AppendAudit commands (and from snapshots).
	audit, err := auditstore.Open(auditstore.Options{
		Dir: filepath.Join(cfg.DataDir, "audit"), Retention: cfg.AuditRetention, MaxBytes: cfg.AuditMaxBytes, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	node, err := raftstore.Open(raftstore.Config{
		ID: cfg.NodeID, DataDir: cfg.DataDir,
		RaftBind: cfg.RaftAddr, RaftAdvertise: cfg.RaftAdvertise,
		ServerTLS: raftServer, ClientTLS: raftClient,
		Forwarder: peerClient, Timing: cfg.Timing, Logger: cfg.Logger,
		Audit: audit,
	})
	if err != nil {
		_ = audit.Close()
		return nil, err
	}
	if id := node.LocalState().Identity(); id != nil && id.GetKekId() != "" && id.GetKekId() != sealer.KeyID() {
		_ = node.Shutdown()
		_ = audit.Close()
		return nil, fmt.Errorf("the key-encryption key (id %s) is not the one this cluster was bootstrapped with (id %s): give every node the same key", sealer.KeyID(), id.GetKekId())
	}

	registry := configsync.NewRegistry(cfg.NodeID, nil)
	// One authenticator for every API of this node: its budget of
	// re-checks for unknown tokens is the node's.
	auth := tokenauth.NewAuthenticator(node, nil)
	api := adminapi.New(adminapi.Config{
		Store: node, Cluster: &cluster{node: node, peer: peerClient, registry: registry},
		Sealer: sealer, Egress: cfg.Egress, Dev: cfg.Dev, Logger: cfg.Logger,
		Audit: audit, Auth: auth,
	})
	mux := http.NewServeMux()
	for _, r := range api.Routes() {
		mux.Handle(r.Path, r.Handler)
	}
	mux.Handle(peer.NewServer(node, registry, forwardKey, !cfg.Dev, cfg.Logger).Handler())
	mux.Handle(configsync.NewServer(configsync.Config{
		Store: node, Auth: auth, Builder: configsync.NewBuilder(sealer, configsync.WithEgress(cfg.Egress)), Registry: registry,
		NodeID: cfg.NodeID, Heartbeat: cfg.SyncHeartbeat, Logger: cfg.Logger,
	}).Handler())
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
	// Long-lived streams (config sync) end when the server closes: their
	// contexts derive from baseCtx, cancelled in Close.
	baseCtx, cancelStreams := context.WithCancel(context.Background())
	hs := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	if apiTLS != nil {
		hs.TLSConfig = apiTLS
	} else {
		hs.Protocols = new(http.Protocols)
		hs.Protocols.SetHTTP1(true)
		hs.Protocols.SetUnencryptedHTTP2(true)
	}
	s := &Server{cfg: cfg, log: log, node: node, http: hs, ln: ln, served: make(chan error, 1), cancelStreams: cancelStreams,
		audit: audit, retentionDone: make(chan struct{}), versionDone: make(chan struct{}), leaderDone: make(chan struct{})}
	go func() {
		defer close(s.retentionDone)
		audit.RunRetention(baseCtx, time.Minute, time.Now)
	}()
	go func() {
		defer close(s.versionDone)
		s.recordVersion(baseCtx)
	}()
	consumers := auditconsumer.New(auditconsumer.Config{
		Store: node, Audit: audit, NodeID: cfg.NodeID, Interval: cfg.ConsumerInterval, Logger: log,
		Consumers: []auditconsumer.Consumer{learn.Consumer{}, alerting.New()},
	})
	alerts := alertsend.New(alertsend.Config{
		Store: node, Sealer: sealer, Sender: alertsend.NewSender(cfg.Egress), NodeID: cfg.NodeID, Logger: log,
	})
	go func() {
		defer close(s.leaderDone)
		runLeaderWork(baseCtx, raftElector{isLeader: node.IsLeader, every: 50 * time.Millisecond}, []leaderJob{
			{name: "audit consumers", run: consumers.Run},
			{name: "alert delivery", run: alerts.Run},
		}, log)
	}()
	go func() {
		if apiTLS != nil {
			s.served <- hs.ServeTLS(ln, "", "")
		} else {
			s.served <- hs.Serve(ln)
		}
	}()

	switch {
	case boot != nil:
		err = s.bootstrap(ctx, boot)
	case fresh && cfg.Join != "":
		err = s.join(ctx)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	if cfg.Dev {
		log.Warn("--dev: the Raft port is plaintext and UNAUTHENTICATED (anyone who can reach it can join or rewrite the cluster's state), and the API serves plain HTTP; loopback only, never in production",
			"raft", cfg.RaftAdvertise, "api", cfg.APIAdvertise)
	}
	log.Info("control plane node serving", "api", cfg.APIAdvertise, "raft", cfg.RaftAdvertise, "dev", cfg.Dev)
	return s, nil
}

// Node is the Raft store of this server.
func (s *Server) Node() *raftstore.Node { return s.node }

// Handler is the HTTP handler serving every API of the node (for tests
// that drive it without a connection).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Addr is the API's bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done yields the error that ended serving (http.ErrServerClosed after Close).
func (s *Server) Done() <-chan error { return s.served }

// Close stops serving and shuts Raft down.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.cancelStreams()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	if nerr := s.node.Shutdown(); nerr != nil && err == nil {
		err = nerr
	}
	<-s.retentionDone
	<-s.versionDone
	<-s.leaderDone
	if aerr := s.audit.Close(); aerr != nil && err == nil {
		err = aerr
	}
	return err
}
