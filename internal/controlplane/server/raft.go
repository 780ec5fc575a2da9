package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/singleton"
)

// openRaft opens the embedded Raft store: it creates the cluster's TLS
// material on bootstrap (or takes it from the backup it starts from),
// fetches a node certificate when joining, and loads it otherwise. The
// bootstrap or join itself runs once the API serves.
func openRaft(ctx context.Context, cfg Config, sealer *seal.Sealer, forwardKey []byte, audit *auditstore.Store, registry *configsync.Registry, log *slog.Logger) (*opened, error) {
	fresh := !raftstore.HasState(cfg.DataDir)
	if fresh && !cfg.Bootstrap && cfg.Join == "" {
		return nil, fmt.Errorf("%s holds no cluster state: start the first node with --bootstrap, or join a cluster with --join", cfg.DataDir)
	}
	if !fresh && (cfg.Bootstrap || cfg.Join != "") {
		log.Info("data dir already holds cluster state; ignoring --bootstrap/--join/--restore-from")
	}

	var boot *bootstrapMaterial
	var backup *backupFile
	var mat tlsMaterial
	var err error
	switch {
	case fresh && cfg.Bootstrap && cfg.RestoreFrom != "":
		if backup, err = readBackupFile(cfg.RestoreFrom, sealer); err != nil {
			return nil, err
		}
		if !cfg.Dev {
			if mat, err = nodeTLS(cfg, sealer, backup.st.Identity()); err != nil {
				return nil, err
			}
		}
	case fresh && cfg.Bootstrap:
		if boot, err = newBootstrapMaterial(cfg, sealer); err != nil {
			return nil, err
		}
		mat = boot.tls
		if !cfg.Dev {
			if err := saveTLS(cfg.DataDir, mat); err != nil {
				return nil, err
			}
		}
	case !cfg.Dev:
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
	peerClient := peer.NewClient(raftClient, forwardKey)
	node, err := raftstore.Open(raftstore.Config{
		ID: cfg.NodeID, DataDir: cfg.DataDir,
		RaftBind: cfg.RaftAddr, RaftAdvertise: cfg.RaftAdvertise,
		ServerTLS: raftServer, ClientTLS: raftClient,
		Forwarder: peerClient, Timing: cfg.Timing, Logger: cfg.Logger,
		Audit: audit, Segments: peerClient,
	})
	if err != nil {
		return nil, err
	}
	if err := checkKEK(node.LocalState().Identity(), sealer); err != nil {
		_ = node.Shutdown()
		return nil, err
	}
	o := &opened{
		b:          node,
		cluster:    &cluster{node: node, peer: peerClient, registry: registry},
		leader:     node,
		apiTLS:     apiTLS,
		peerClient: peerClient,
		elector:    singleton.Poll{IsLeader: node.IsLeader},
		describe:   []any{"store", StoreRaft, "raft", cfg.RaftAdvertise},
	}
	switch {
	case backup != nil:
		o.after = func(ctx context.Context, s *Server) error { return s.bootstrapFromBackup(ctx, backup) }
	case boot != nil:
		o.after = func(ctx context.Context, s *Server) error { return s.bootstrap(ctx, boot) }
	case fresh && cfg.Join != "":
		o.after = func(ctx context.Context, s *Server) error { return s.join(ctx) }
	}
	return o, nil
}

// errNoForwarding answers a node-to-node call a node on etcd never
// makes: with etcd every node writes to the store itself.
var errNoForwarding = errors.New("control-plane nodes on etcd do not forward to each other")
