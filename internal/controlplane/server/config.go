// Package server assembles a control-plane node: key-encryption key, TLS
// material, the replicated store (embedded Raft, or an existing etcd
// cluster), the node-to-node API and the admin API, the singleton work,
// and the bootstrap and join procedures. cmd/controlplane only parses
// flags into a Config and calls Start.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"net/url"

	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/singleton"
	"github.com/portcullis-gw/portcullis/internal/egress"
)

// The stores a node can run on.
const (
	StoreRaft = "raft"
	StoreEtcd = "etcd"
)

// EtcdConfig says how a node reaches the etcd cluster it keeps its state
// in (Config.Store "etcd").
type EtcdConfig struct {
	// Endpoints are etcd client URLs (https://, or http:// on loopback).
	Endpoints []string
	// Prefix is where the cluster's keys live (default /portcullis): one
	// control-plane cluster per prefix.
	Prefix string
	// CAFile verifies etcd's certificates (default: the system roots);
	// CertFile and KeyFile are this node's client certificate, when etcd
	// asks for one.
	CAFile, CertFile, KeyFile string
	// CompactHistory has the elected node compact etcd's history (see
	// etcdstore.Config.CompactHistory).
	CompactHistory bool
	Timing         etcdstore.Timing
}

// Config configures a node. Validate fills defaults and checks it.
type Config struct {
	NodeID  string
	DataDir string
	// RaftAddr is the Raft transport's listen address; peers dial
	// RaftAdvertise (default RaftAddr).
	RaftAddr      string
	RaftAdvertise string
	// APIAddr is the admin and node-to-node API's listen address; other
	// nodes forward to APIAdvertise (default APIAddr).
	APIAddr      string
	APIAdvertise string
	// Store is the replicated store: StoreRaft (default) or StoreEtcd.
	Store string
	// Etcd configures the etcd store.
	Etcd EtcdConfig
	// Bootstrap makes a node with no state the first member of a new
	// cluster.
	Bootstrap bool
	// RestoreFrom, with Bootstrap, starts the new cluster from a backup
	// file ("gwctl snapshot save") instead of a new identity: the same
	// cluster id, CA, tokens and resources, in a new epoch. It moves a
	// cluster from one store to the other.
	RestoreFrom string
	// Join is the API URL of a running member, for a node with no state.
	Join string
	// JoinToken is an admin token of the cluster being joined.
	JoinToken string
	// JoinCAFingerprint pins the cluster CA when joining over TLS.
	JoinCAFingerprint string
	// Dev serves plaintext, and is allowed only on loopback addresses.
	Dev bool
	// KEKFile and KEK (the value of PORTCULLIS_KEK) give the key-encryption
	// key; KEK wins when both are set.
	KEKFile string
	KEK     string
	// TLSHosts are extra DNS names or IPs for this node's certificate.
	TLSHosts []string
	// Egress is the policy for upstream, JWKS and token URLs, checked
	// here when they are registered and sent to data planes in every
	// snapshot, which dial under it. Give every node the same one.
	Egress egress.Policy
	Timing raftstore.Timing
	// SyncHeartbeat is the config-sync heartbeat interval (default 2s).
	SyncHeartbeat time.Duration
	// AuditRetention is how long the audit store keeps records (0: 90
	// days; negative: forever); AuditMaxBytes bounds its size (0: none).
	AuditRetention time.Duration
	AuditMaxBytes  int64
	// AuditSegmentSize is the size at which the audit store seals a
	// segment and starts the next (0: 64 MiB). Give every node the same
	// one, or nodes name different segments and a node catching up from a
	// snapshot fetches every one.
	AuditSegmentSize int64
	// ConsumerInterval is the least time between two batches of an audit
	// consumer on the leader (default 100ms): part of the lag from a call
	// to the alert it raises and to the learned list that holds its value.
	ConsumerInterval time.Duration
	// WebWrites lets signed-in users change state from the web view
	// (/ui/); without it the view only reads.
	WebWrites bool
	// RolloutInterval is how often the rollout controller looks at the
	// rollout in progress on the leader (0: every second).
	RolloutInterval time.Duration
	// LeaseDuration is how long a rate-limit lease stays valid (0: 6s),
	// and so how long a new leader grants nothing after it takes over.
	LeaseDuration time.Duration
	// Singletons is singleton work beside the store's own, run on the
	// elected node (the Raft leader, or the etcd election's winner).
	Singletons []singleton.Job
	Logger     *slog.Logger
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if err := resource.ValidateName("--node-id", c.NodeID); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if c.Store == "" {
		c.Store = StoreRaft
	}
	addrs := map[string]*string{"--api-addr": &c.APIAddr, "--api-advertise": &c.APIAdvertise}
	switch c.Store {
	case StoreRaft:
		if c.RaftAdvertise == "" {
			c.RaftAdvertise = c.RaftAddr
		}
		addrs["--raft-addr"], addrs["--raft-advertise"] = &c.RaftAddr, &c.RaftAdvertise
	case StoreEtcd:
		// A node on etcd has no Raft transport.
		c.RaftAddr, c.RaftAdvertise = "", ""
		errs = append(errs, c.Etcd.validate()...)
		if c.Join != "" {
			errs = append(errs, errors.New("--join is for Raft: a node on etcd finds its cluster under --etcd-prefix (start the first node with --bootstrap, the others with the same --etcd-endpoints, --etcd-prefix and key-encryption key)"))
		}
	default:
		errs = append(errs, fmt.Errorf("--store %q: want raft or etcd", c.Store))
	}
	if c.RestoreFrom != "" && !c.Bootstrap {
		errs = append(errs, errors.New("--restore-from starts a new cluster from a backup: give it with --bootstrap (to restore into a running cluster, use 'gwctl snapshot restore')"))
	}
	if c.APIAdvertise == "" {
		c.APIAdvertise = c.APIAddr
	}
	for flag, v := range addrs {
		if err := resource.ValidateHostPort(flag, *v); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.Egress.Allow) > egress.MaxPrefixes || len(c.Egress.Deny) > egress.MaxPrefixes {
		errs = append(errs, fmt.Errorf("--egress-allow and --egress-deny take at most %d ranges each (data planes refuse a longer list)", egress.MaxPrefixes))
	}
	if c.ConsumerInterval < 0 || c.ConsumerInterval > time.Minute {
		errs = append(errs, errors.New("--audit-consumer-interval must be between 0 (default 100ms) and 1m"))
	}
	if c.Bootstrap && c.Join != "" {
		errs = append(errs, errors.New("--bootstrap and --join exclude each other"))
	}
	if c.Join != "" && c.JoinToken == "" {
		errs = append(errs, errors.New("--join needs --join-token (an admin token of the cluster)"))
	}
	if c.Join != "" && !c.Dev && c.JoinCAFingerprint == "" {
		errs = append(errs, errors.New("--join needs --join-ca-fingerprint (shown by 'gwctl cluster status') to trust the cluster"))
	}
	if c.Dev {
		for flag, v := range addrs {
			if !loopback(*v) {
				errs = append(errs, fmt.Errorf("%s %s: --dev serves plaintext and is allowed only on loopback addresses (127.0.0.0/8, ::1, localhost)", flag, *v))
			}
		}
		if c.Join != "" && !strings.HasPrefix(c.Join, "http://") {
			errs = append(errs, errors.New("--dev joins over plain http:// only"))
		}
	} else if c.Join != "" && !strings.HasPrefix(c.Join, "https://") {
		errs = append(errs, errors.New("--join must be an https:// URL (plaintext only with --dev)"))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

// validate checks the etcd settings.
func (e *EtcdConfig) validate() []error {
	var errs []error
	if len(e.Endpoints) == 0 {
		errs = append(errs, errors.New("--store etcd needs --etcd-endpoints (the etcd cluster's client URLs)"))
	}
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			errs = append(errs, fmt.Errorf("--etcd-endpoints %q: want a URL such as https://10.0.0.1:2379", ep))
		case u.Scheme == "http" && !loopback(u.Host):
			errs = append(errs, fmt.Errorf("--etcd-endpoints %q: plain http is allowed only on loopback; etcd holds the cluster's state (sealed secrets, token hashes), so reach it over https://", ep))
		}
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		errs = append(errs, errors.New("--etcd-cert-file and --etcd-key-file go together"))
	}
	if len(e.Prefix) > 0 && !strings.HasPrefix(e.Prefix, "/") {
		errs = append(errs, fmt.Errorf("--etcd-prefix %q: want an absolute key prefix such as /portcullis", e.Prefix))
	}
	return errs
}

func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// hosts returns the host parts of the node's addresses plus TLSHosts, for
// its certificate.
func (c *Config) hosts() []string {
	seen := map[string]bool{}
	var out []string
	add := func(h string) {
		if h != "" && !seen[h] && h != "0.0.0.0" && h != "::" {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, a := range []string{c.RaftAddr, c.RaftAdvertise, c.APIAddr, c.APIAdvertise} {
		if a == "" {
			continue
		}
		h, _, _ := net.SplitHostPort(a)
		add(h)
	}
	for _, h := range c.TLSHosts {
		add(h)
	}
	return out
}
