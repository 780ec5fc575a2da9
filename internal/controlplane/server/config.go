// Package server assembles a control-plane node: key-encryption key, TLS
// material, the Raft store, the node-to-node API and the admin API, and the
// bootstrap and join procedures. cmd/controlplane only parses flags into a
// Config and calls Start.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/egress"
)

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
	// Bootstrap makes a node with no state the first member of a new
	// cluster.
	Bootstrap bool
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
	// ConsumerInterval is the least time between two batches of an audit
	// consumer on the leader (default 100ms): part of the lag from a call
	// to the alert it raises and to the learned list that holds its value.
	ConsumerInterval time.Duration
	Logger           *slog.Logger
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
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = c.RaftAddr
	}
	if c.APIAdvertise == "" {
		c.APIAdvertise = c.APIAddr
	}
	for flag, v := range map[string]string{"--raft-addr": c.RaftAddr, "--api-addr": c.APIAddr, "--raft-advertise": c.RaftAdvertise, "--api-advertise": c.APIAdvertise} {
		if err := resource.ValidateHostPort(flag, v); err != nil {
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
		for flag, v := range map[string]string{"--raft-addr": c.RaftAddr, "--api-addr": c.APIAddr, "--raft-advertise": c.RaftAdvertise, "--api-advertise": c.APIAdvertise} {
			if !loopback(v) {
				errs = append(errs, fmt.Errorf("%s %s: --dev serves plaintext and is allowed only on loopback addresses (127.0.0.0/8, ::1, localhost)", flag, v))
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
		h, _, _ := net.SplitHostPort(a)
		add(h)
	}
	for _, h := range c.TLSHosts {
		add(h)
	}
	return out
}
