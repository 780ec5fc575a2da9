// Command dataplane runs a Portcullis data plane: the stateless proxy agents
// call. Its whole configuration is the last snapshot it accepted from the
// control plane, kept on disk so it can serve while no control plane
// answers.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/portcullis-gw/portcullis/internal/dataplane/server"
	"github.com/portcullis-gw/portcullis/internal/envflag"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/spf13/cobra"
)

const envPrefix = "PORTCULLIS_DP"

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dataplane:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var cfg server.Config
	var cred, credFile, logLevel, logFormat string
	var auditSync bool
	cmd := &cobra.Command{
		Use:           "dataplane",
		Short:         "Run a Portcullis data plane",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envflag.Apply(cmd.Flags(), envPrefix, nil); err != nil {
				return err
			}
			logger, err := logging.New(os.Stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			cfg.AuditAsync = !auditSync
			if credFile != "" {
				b, err := os.ReadFile(credFile)
				if err != nil {
					return fmt.Errorf("--join-credential-file: %w", err)
				}
				cred = string(b)
			}
			if strings.TrimSpace(cred) != "" {
				if cfg.Credential, err = joincred.Parse(cred); err != nil {
					return fmt.Errorf("join credential: %w", err)
				}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the last-known-good snapshot and the audit log")
	f.StringSliceVar(&cfg.ControlPlanes, "control-plane", nil, "control-plane API URL (repeatable or comma-separated; any node will do)")
	f.StringVar(&cred, "join-credential", "", "join credential from 'gwctl dataplane token create' (prefer the env var or a file: it is a secret)")
	f.StringVar(&credFile, "join-credential-file", "", "file holding the join credential")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:7480", "address agents call (/mcp); /healthz, /readyz and /metrics are served there too")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate file for serving TLS 1.3 on --listen (with --tls-key); agents' client certificates (mTLS) are accepted only over TLS")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	f.BoolVar(&cfg.PlaintextListen, "plaintext-listen", false, "serve plain HTTP on a --listen address that is not loopback (agents' credentials cross the network unencrypted; use TLS instead where you can)")
	f.DurationVar(&cfg.DegradedAfter, "degraded-after", server.DefaultDegradedAfter, "time without a control plane before only read-only tools are served")
	f.DurationVar(&cfg.MaxStale, "max-stale", server.DefaultMaxStale, "age of the configuration (without a control plane) after which every call is refused")
	f.BoolVar(&auditSync, "audit-sync", true, "answer a call only once its audit record is fsynced; false answers once it is written to the OS (fsynced every 100ms), so a machine crash can lose the records of answered calls and reuse their sequence numbers, after which the control plane refuses this data plane's uploads as a broken chain")
	f.BoolVar(&cfg.AuditFailOpen, "audit-fail-open", false, "answer calls even when their audit record cannot be written (the records are lost, logged and counted in portcullis_dataplane_audit_lost_total); by default such calls are refused with reason audit_unavailable")
	f.StringSliceVar(&cfg.AuditRedact, "audit-redact", nil, "argument fields whose values audit records replace with [REDACTED]: names (any depth) or paths from the top, e.g. password,card.number or /card/number; values that look like credentials are redacted anyway")
	f.StringVar(&cfg.AuditOTLPEndpoint, "audit-otlp-endpoint", "", "also export every audit record as an OpenTelemetry log record to this OTLP/HTTP logs URL (e.g. http://collector:4318/v1/logs; /v1/logs when no path); batched, never delays a call, drops and counts records when the collector falls behind")
	f.DurationVar(&cfg.RolloutSummaryInterval, "rollout-summary-interval", server.DefaultRolloutSummaryInterval, "how often the counts of a staged policy rollout go to the audit log (and on to the rollout controller)")
	cfg.Tracing.Flags(f)
	f.BoolVar(&cfg.UpstreamHTTP1, "upstream-http1", true, "reach plain http:// upstreams over HTTP/1.1 on the calling goroutine instead of net/http's transport (less CPU and latency per call; https upstreams always use net/http); --upstream-http1=false goes back to net/http")
	f.BoolVar(&cfg.Dev, "dev", false, "allow plain http:// control planes on loopback (never in production)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	envflag.Annotate(f, envPrefix)
	return cmd
}

func run(ctx context.Context, cfg server.Config) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	return srv.Close()
}
