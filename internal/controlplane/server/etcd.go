package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// Decision: on etcd a node needs no join. Every node is given the etcd
// endpoints, the prefix and the cluster's key-encryption key; it finds
// the cluster's state under the prefix, opens the sealed CA key with the
// key-encryption key and issues its own node certificate, and records
// itself (its Node resource) in the state. Whoever can write the prefix
// and holds the key-encryption key controls the cluster anyway, so a join
// token would add a step, not a safeguard. The first node creates the
// cluster with --bootstrap (a new identity, or --restore-from a backup).

// openEtcd opens the etcd store, catches up with the log, and bootstraps
// the cluster under the prefix or finds it there.
func openEtcd(ctx context.Context, cfg Config, sealer *seal.Sealer, forwardKey []byte, audit *auditstore.Store, registry *configsync.Registry, log *slog.Logger) (*opened, error) {
	etcdTLS, err := etcdClientTLS(cfg.Etcd)
	if err != nil {
		return nil, err
	}
	copier := &auditCopier{cfg: cfg, sealer: sealer, key: forwardKey, audit: audit, log: log}
	node, err := etcdstore.Open(ctx, etcdstore.Config{
		NodeID: cfg.NodeID, Endpoints: cfg.Etcd.Endpoints, TLS: etcdTLS, Prefix: cfg.Etcd.Prefix,
		Dir: filepath.Join(cfg.DataDir, "etcd"), Audit: audit, Peers: copier, CompactHistory: cfg.Etcd.CompactHistory,
		Timing: cfg.Etcd.Timing, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*opened, error) {
		_ = node.Shutdown()
		return nil, err
	}
	if err := node.WaitSynced(ctx); err != nil {
		return fail(err)
	}

	var boot *bootstrapMaterial
	adopt := false
	switch id := node.LocalState().Identity(); {
	case id == nil && !cfg.Bootstrap:
		return fail(fmt.Errorf("etcd holds no cluster under %q: start the first node with --bootstrap (or --bootstrap --restore-from a backup), then the others without it", prefixOf(cfg)))
	case id == nil && cfg.RestoreFrom != "":
		backup, err := readBackupFile(cfg.RestoreFrom, sealer)
		if err != nil {
			return fail(err)
		}
		if err := node.Restore(ctx, backup.data); err != nil {
			return fail(fmt.Errorf("--restore-from %s: %w", cfg.RestoreFrom, err))
		}
		adopt = true
	case id == nil:
		if boot, err = newBootstrapMaterial(cfg, sealer); err != nil {
			return fail(err)
		}
		if err := recordBootstrap(ctx, node, cfg, boot, log); err != nil {
			// The token file names a cluster that was not created.
			_ = os.Remove(filepath.Join(cfg.DataDir, AdminTokenFile))
			if node.LocalState().Identity().GetClusterId() != boot.identity.GetClusterId() {
				return fail(fmt.Errorf("another node bootstrapped a cluster under %q first; start this node without --bootstrap: %w", prefixOf(cfg), err))
			}
			return fail(err)
		}
	case cfg.Bootstrap:
		log.Info("etcd already holds a cluster under the prefix; ignoring --bootstrap/--restore-from", "cluster_id", id.GetClusterId(), "prefix", prefixOf(cfg))
	}
	id := node.LocalState().Identity()
	if err := checkKEK(id, sealer); err != nil {
		return fail(err)
	}
	var apiTLS, peerTLS *tls.Config
	if !cfg.Dev {
		mat := tlsMaterial{}
		if boot != nil {
			mat = boot.tls
			if err := saveTLS(cfg.DataDir, mat); err != nil {
				return fail(err)
			}
		} else if mat, err = nodeTLS(cfg, sealer, id); err != nil {
			return fail(err)
		}
		if apiTLS, err = pki.ServerConfig(mat.certPEM, mat.keyPEM, mat.caPEM); err != nil {
			return fail(fmt.Errorf("API TLS: %w", err))
		}
		if peerTLS, err = pki.PeerClientConfig(mat.certPEM, mat.keyPEM, mat.caPEM); err != nil {
			return fail(fmt.Errorf("node-to-node TLS: %w", err))
		}
	}
	if adopt {
		if err := adopted(ctx, node, cfg, log); err != nil {
			return fail(err)
		}
	} else if err := registerNode(ctx, node, cfg); err != nil {
		return fail(err)
	}
	peerClient := peer.NewClient(peerTLS, forwardKey)
	return &opened{
		b:          node,
		cluster:    &etcdCluster{node: node, peer: peerClient, registry: registry},
		leader:     etcdPeer{},
		audit:      node,
		apiTLS:     apiTLS,
		peerClient: peerClient,
		elector:    node,
		jobs:       node.Jobs(),
		fatal:      node.Err(),
		describe:   []any{"store", StoreEtcd, "etcd", cfg.Etcd.Endpoints, "prefix", prefixOf(cfg)},
	}, nil
}

func prefixOf(cfg Config) string {
	if cfg.Etcd.Prefix == "" {
		return etcdstore.DefaultPrefix
	}
	return cfg.Etcd.Prefix
}

// etcdClientTLS is the TLS configuration for etcd's client URLs (nil when
// none is https://).
func etcdClientTLS(e EtcdConfig) (*tls.Config, error) {
	secure := false
	for _, ep := range e.Endpoints {
		secure = secure || len(ep) > 8 && ep[:8] == "https://"
	}
	if !secure && e.CAFile == "" && e.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-ca-file %s holds no PEM certificate", e.CAFile)
		}
		tc.RootCAs = pool
	}
	if e.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert-file/--etcd-key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// auditCopier fetches peers' audit stores for the etcd store (see
// etcdstore.AuditCopier) over the node-to-node API. It builds its client
// when first needed, from the state the store is about to install: a new
// node has no certificate until it has seen the cluster's CA.
type auditCopier struct {
	cfg    Config
	sealer *seal.Sealer
	key    []byte
	audit  *auditstore.Store
	log    *slog.Logger

	mu     sync.Mutex
	client *peer.Client
}

var _ etcdstore.AuditCopier = (*auditCopier)(nil)

// errBehind: a peer has not applied as much as the copy must cover.
var errBehind = errors.New("the peer has not applied that far yet")

func (c *auditCopier) peerClient(st *state.State) (*peer.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	var tc *tls.Config
	if !c.cfg.Dev {
		mat, err := nodeTLS(c.cfg, c.sealer, st.Identity())
		if err != nil {
			return nil, err
		}
		if tc, err = pki.PeerClientConfig(mat.certPEM, mat.keyPEM, mat.caPEM); err != nil {
			return nil, err
		}
	}
	c.client = peer.NewClient(tc, c.key)
	return c.client, nil
}

// CopyAudit implements etcdstore.AuditCopier.
func (c *auditCopier) CopyAudit(ctx context.Context, st *state.State, peers []string, revision int64) (string, error) {
	client, err := c.peerClient(st)
	if err != nil {
		return "", err
	}
	backoff := 200 * time.Millisecond
	for round := 1; ; round++ {
		var last error
		for _, addr := range peers {
			err := client.CopyAuditStore(ctx, addr, func(applied uint64, r io.Reader) error {
				if int64(applied) < revision {
					return fmt.Errorf("%w (at %d, need %d)", errBehind, applied, revision)
				}
				return c.audit.Restore(r, segmentSources(client, addr, peers)...)
			})
			if err == nil {
				return addr, nil
			}
			last = fmt.Errorf("%s: %w", addr, err)
		}
		if round%5 == 1 {
			c.log.WarnContext(ctx, "no peer gave a copy of its audit store covering the gap yet; retrying (the node is not ready until one does)",
				"need_revision", revision, "last_error", last)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// segmentSources fetch the sealed segments a manifest copy from addr lists
// and this node lacks: from addr first (it holds every one it listed), then
// from the other peers.
func segmentSources(client *peer.Client, addr string, peers []string) []auditstore.Source {
	addrs := append([]string{addr}, slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return p == addr })...)
	out := make([]auditstore.Source, len(addrs))
	for i, a := range addrs {
		out[i] = func(ctx context.Context, name string, w io.Writer) error {
			return client.FetchAuditSegment(ctx, a, name, w)
		}
	}
	return out
}

// etcdCluster implements adminapi.Cluster on etcd: the members are the
// nodes recorded in the state (every one applies the log, so every one is
// a "voter" for the version gates), the leader is the elected node.
type etcdCluster struct {
	node     *etcdstore.Node
	peer     *peer.Client
	registry *configsync.Registry
}

var _ adminapi.Cluster = (*etcdCluster)(nil)

func (c *etcdCluster) NodeID() string           { return c.node.ID() }
func (c *etcdCluster) Leader() (string, string) { return c.node.Leader() }
func (c *etcdCluster) LastContact() time.Time   { return c.node.LastContact() }

func (c *etcdCluster) Members() ([]adminapi.Member, error) {
	leader, _ := c.node.Leader()
	var out []adminapi.Member
	c.node.LocalState().Each(resource.Node, func(r *fsmv1.Resource) bool {
		id := resource.Name(r)
		out = append(out, adminapi.Member{ID: id, APIAddr: r.GetNode().GetApiAddr(), Suffrage: "voter", Leader: id == leader,
			Version: clusterversion.Of(r.GetNode().GetMaxClusterVersion())})
		return true
	})
	return out, nil
}

// AddVoter does nothing: on etcd the node's record is its membership, and
// a node records itself when it starts.
func (c *etcdCluster) AddVoter(context.Context, string, string) error { return nil }

// RemoveServer drops the node's hold on the etcd log, so the log no
// longer waits for it (the admin API then deletes its record).
func (c *etcdCluster) RemoveServer(ctx context.Context, id string) error {
	return c.node.Release(ctx, id)
}

func (c *etcdCluster) Restore(ctx context.Context, backup []byte) error {
	return c.node.Restore(ctx, backup)
}

func (c *etcdCluster) DataplaneStatuses(ctx context.Context) ([]*adminv1.DataplaneStatus, error) {
	ms, _ := c.Members()
	return gatherStatuses(ctx, c.node.ID(), c.registry, ms, c.peer), nil
}

// etcdPeer answers the leader-only node-to-node calls on etcd, where no
// node forwards to another.
type etcdPeer struct{}

var _ peer.Leader = etcdPeer{}

func (etcdPeer) ApplyLocal(context.Context, []byte) (*fsmv1.Result, error) {
	return nil, fmt.Errorf("%w: %w", store.ErrInvalid, errNoForwarding)
}

func (etcdPeer) ReadIndexLocal(context.Context) (uint64, error) {
	return 0, fmt.Errorf("%w: %w", store.ErrInvalid, errNoForwarding)
}

func (etcdPeer) AddVoterLocal(context.Context, string, string) error {
	return fmt.Errorf("%w: %w", store.ErrInvalid, errNoForwarding)
}

func (etcdPeer) RemoveLocal(context.Context, string) error {
	return fmt.Errorf("%w: %w", store.ErrInvalid, errNoForwarding)
}

func (etcdPeer) RestoreLocal(context.Context, []byte) error {
	return fmt.Errorf("%w: %w", store.ErrInvalid, errNoForwarding)
}
