// Command controlplane runs one node of the Portcullis control plane: the
// registry, policies and secrets, replicated with embedded Raft or kept
// in an existing etcd cluster, and the admin API.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	"github.com/portcullis-gw/portcullis/internal/envflag"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/spf13/cobra"
)

const envPrefix = "PORTCULLIS"

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var cfg server.Config
	var logLevel, logFormat, retention string
	var allow, deny []string
	cmd := &cobra.Command{
		Use:           "controlplane",
		Short:         "Run a Portcullis control-plane node",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envflag.Apply(cmd.Flags(), envPrefix, nil); err != nil {
				return err
			}
			cfg.KEK = os.Getenv(envPrefix + "_KEK")
			logger, err := logging.New(os.Stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			for _, a := range allow {
				p, err := netip.ParsePrefix(a)
				if err != nil {
					return fmt.Errorf("--egress-allow %q: %w", a, err)
				}
				cfg.Egress.Allow = append(cfg.Egress.Allow, p)
			}
			for _, d := range deny {
				p, err := netip.ParsePrefix(d)
				if err != nil {
					return fmt.Errorf("--egress-deny %q: %w", d, err)
				}
				cfg.Egress.Deny = append(cfg.Egress.Deny, p)
			}
			if cfg.AuditRetention, err = parseRetention(retention); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeID, "node-id", "", "this node's id, unique in the cluster (a DNS label)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for Raft state, TLS material and the bootstrap admin token")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:7441", "listen address of the Raft transport")
	f.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "address other nodes dial for Raft (default --raft-addr)")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:7440", "listen address of the admin and node-to-node API")
	f.StringVar(&cfg.APIAdvertise, "api-advertise", "", "address other nodes forward writes to (default --api-addr)")
	f.StringVar(&cfg.Store, "store", server.StoreRaft, "where the cluster keeps its state: raft (embedded, the default) or etcd (an existing etcd cluster; see --etcd-*)")
	f.StringSliceVar(&cfg.Etcd.Endpoints, "etcd-endpoints", nil, "with --store etcd: the etcd cluster's client URLs, comma-separated (https://, or http:// on loopback)")
	f.StringVar(&cfg.Etcd.Prefix, "etcd-prefix", "/portcullis", "with --store etcd: the key prefix the cluster's state lives under (one control-plane cluster per prefix)")
	f.StringVar(&cfg.Etcd.CAFile, "etcd-ca-file", "", "with --store etcd: CA certificate(s) to verify etcd's (default: the system roots)")
	f.StringVar(&cfg.Etcd.CertFile, "etcd-cert-file", "", "with --store etcd: this node's client certificate for etcd")
	f.StringVar(&cfg.Etcd.KeyFile, "etcd-key-file", "", "with --store etcd: the key of --etcd-cert-file")
	f.DurationVar(&cfg.Etcd.Timing.SessionTTL, "etcd-session-ttl", 0, "with --store etcd: lease of the election session; another node takes singleton work over this long after the elected one dies (default 5s)")
	f.DurationVar(&cfg.Etcd.Timing.SnapshotInterval, "etcd-snapshot-interval", 0, "with --store etcd: how often the elected node snapshots the state into etcd and truncates the log (default 5s)")
	f.BoolVar(&cfg.Etcd.CompactHistory, "etcd-compact-history", false, "with --store etcd: have the elected node compact etcd's history up to what every node has applied (at most once a minute); for an etcd nobody else compacts (without it, deleted log entries still take space until etcd is compacted)")
	f.Int64Var(&cfg.Etcd.Timing.MaxLogBytes, "etcd-max-log-bytes", 0, "with --store etcd: bound on the log etcd holds for nodes that lag; past it the furthest-behind node resyncs from a snapshot later (default 256 MiB)")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", false, "create a new cluster with this node as its first member (only with an empty data dir, or an empty etcd prefix)")
	f.StringVar(&cfg.RestoreFrom, "restore-from", "", "with --bootstrap: start the new cluster from a backup ('gwctl snapshot save') instead of a new identity: same cluster id, CA, tokens and data, in a new epoch (moves a cluster between Raft and etcd)")
	f.StringVar(&cfg.Join, "join", "", "API URL of a running member to join (only with an empty data dir)")
	f.StringVar(&cfg.JoinToken, "join-token", "", "an admin token of the cluster being joined")
	f.StringVar(&cfg.JoinCAFingerprint, "join-ca-fingerprint", "", "fingerprint of the cluster CA to trust when joining (gwctl cluster status shows it)")
	f.BoolVar(&cfg.Dev, "dev", false, "serve plaintext (loopback addresses only) with an unauthenticated Raft port: for local experiments, never for production")
	f.StringVar(&cfg.KEKFile, "kek-file", "", "file holding the 32-byte key-encryption key (base64 or hex); PORTCULLIS_KEK may hold the key itself; with --dev and neither, a bootstrapping node creates <data-dir>/kek")
	f.StringSliceVar(&cfg.TLSHosts, "tls-host", nil, "extra DNS name or IP for this node's certificate (repeatable)")
	f.BoolVar(&cfg.Egress.AllowLinkLocal, "egress-allow-link-local", false, "allow upstream, JWKS and token URLs on link-local and cloud-metadata addresses")
	f.StringSliceVar(&allow, "egress-allow", nil, "CIDR ranges upstream URLs may use even when the egress policy refuses them (repeatable)")
	f.StringSliceVar(&deny, "egress-deny", nil, "CIDR ranges upstream, JWKS and token URLs may not use (repeatable; the longest matching --egress-allow or --egress-deny range decides)")
	f.DurationVar(&cfg.Timing.HeartbeatTimeout, "raft-heartbeat-timeout", 0, "Raft heartbeat timeout (default 1s)")
	f.DurationVar(&cfg.Timing.ElectionTimeout, "raft-election-timeout", 0, "Raft election timeout (default 1s)")
	f.DurationVar(&cfg.Timing.LeaderLeaseTimeout, "raft-leader-lease-timeout", 0, "Raft leader lease timeout (default 500ms)")
	f.Uint64Var(&cfg.Timing.SnapshotThreshold, "raft-snapshot-threshold", 0, "log entries between Raft snapshots (default 8192)")
	f.StringVar(&retention, "audit-retention", "90d", "how long the audit store keeps records, e.g. 90d or 720h (0: forever); whole segments are dropped")
	f.DurationVar(&cfg.LeaseDuration, "lease-duration", 0, "how long a data plane's rate-limit lease stays valid; a new leader grants nothing for this long after it takes over (default 6s)")
	f.Int64Var(&cfg.AuditMaxBytes, "audit-max-bytes", 0, "bound on the audit store's size in bytes; the oldest segments are dropped beyond it (0: none)")
	f.DurationVar(&cfg.ConsumerInterval, "audit-consumer-interval", 0, "least time between two batches of the leader's audit consumers (learned lists, alerts); default 100ms")
	f.BoolVar(&cfg.WebWrites, "web-writes", false, "let users signed in to the web view (/ui/) with an operator or admin token change state (freeze, agent disable/enable); off: the view only reads")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	envflag.Annotate(f, envPrefix)
	cmd.AddCommand(newKEKCommand())
	return cmd
}

func newKEKCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "gen-kek FILE",
		Short: "Write a new random key-encryption key to FILE (mode 0600); give the same file to every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return seal.GenerateKeyFile(args[0])
		},
	}
}

func run(ctx context.Context, cfg server.Config) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
		return srv.Close()
	case err := <-srv.Done():
		_ = srv.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// parseRetention reads --audit-retention: a Go duration or a whole number
// of days ("90d"); 0 keeps records forever.
func parseRetention(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("--audit-retention %q: want a number of days (90d) or a duration (720h)", v)
		}
		v = (time.Duration(n) * 24 * time.Hour).String()
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--audit-retention %q: want a number of days (90d) or a duration (720h)", v)
	}
	if d == 0 {
		return -1, nil // forever
	}
	return d, nil
}
