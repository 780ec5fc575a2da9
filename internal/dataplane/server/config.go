// Package server assembles a data plane: the last-known-good snapshot, the
// sync client, the mode tracker, the request pipeline, the MCP endpoint,
// audit and metrics. cmd/dataplane only parses flags into a Config.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditredact"
	"github.com/portcullis-gw/portcullis/internal/dataplane/rolloutcount"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"github.com/portcullis-gw/portcullis/internal/tracing"
)

// Defaults.
const (
	DefaultDegradedAfter = 15 * time.Second
	DefaultMaxStale      = 24 * time.Hour
	// DefaultRolloutSummaryInterval is how often rollout counts are
	// written.
	DefaultRolloutSummaryInterval = rolloutcount.DefaultInterval
)

// Config configures a data plane.
type Config struct {
	// DataDir holds the last-known-good snapshot and the audit log (in
	// DataDir/audit).
	DataDir string
	// ControlPlanes are control-plane API URLs; any of them will do.
	ControlPlanes []string
	// Credential is the join credential ("pcj1_…", parsed).
	Credential joincred.Credential
	// Listen is the address agents call (/mcp) and where /healthz,
	// /readyz and /metrics are served.
	Listen string
	// TLSCert and TLSKey are PEM files of the listener's certificate and
	// key: both or neither. With them the listener serves TLS 1.3 (h2 and
	// http/1.1) and requests, without requiring, client certificates, which
	// the pipeline verifies per call against the serving snapshot (mTLS
	// agent authentication). Without them it serves plain HTTP, where only
	// API keys and JWTs can authenticate.
	TLSCert, TLSKey string
	// DegradedAfter is how long without a control plane before only
	// read-only tools are served.
	DegradedAfter time.Duration
	// MaxStale is how old the configuration may get (without a control
	// plane) before every call is refused.
	MaxStale time.Duration
	// UpstreamHTTP1 reaches plain http:// upstreams over HTTP/1.1 on the
	// calling goroutine (package upstream/h1) instead of net/http's
	// Transport (--upstream-http1, which the data plane binary turns on by
	// default; the zero value, net/http, is what in-process users get).
	UpstreamHTTP1 bool
	// AuditAsync answers a call once its audit record is written to the
	// OS, without waiting for the fsync (--audit-sync=false): faster, but a
	// machine crash can lose the records of answered calls (see
	// audit.Options.Async). The zero value waits for the fsync.
	AuditAsync bool
	// AuditFailOpen answers calls whose audit record cannot be written
	// (the record is lost, logged and counted); by default such calls are
	// refused with reason audit_unavailable (fail closed).
	AuditFailOpen bool
	// AuditRedact names the argument fields whose values audit records
	// replace with "[REDACTED]" (--audit-redact; syntax in package
	// auditredact). Detected secrets are removed whatever it says.
	AuditRedact []string
	// AuditOTLPEndpoint, when set, is an OTLP/HTTP logs URL every
	// committed audit record is also exported to (--audit-otlp-endpoint;
	// see package auditotlp): batched, never delaying a call, dropped and
	// counted when the collector falls behind.
	AuditOTLPEndpoint string
	// RolloutSummaryInterval is how often the counts of a policy rollout
	// go to the audit log as summary records (--rollout-summary-interval,
	// default 10s): the delay before the rollout controller sees them.
	RolloutSummaryInterval time.Duration
	// PlaintextListen allows serving plain HTTP on a --listen address
	// that is not loopback (--plaintext-listen): agents' credentials and
	// arguments then cross the network unencrypted. Without it such a
	// --listen needs --tls-cert/--tls-key.
	PlaintextListen bool
	// Tracing exports OpenTelemetry spans of every call (--trace-otlp-*,
	// --trace-sample-ratio); off without an endpoint.
	Tracing tracing.Config
	// Dev allows plain http:// control planes, on loopback only.
	Dev    bool
	Logger *slog.Logger
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if len(c.ControlPlanes) == 0 {
		errs = append(errs, errors.New("--control-plane is required (one or more control-plane API URLs)"))
	}
	for _, u := range c.ControlPlanes {
		switch {
		case strings.HasPrefix(u, "https://"):
		case strings.HasPrefix(u, "http://") && c.Dev:
			if !loopbackURL(u) {
				errs = append(errs, fmt.Errorf("--control-plane %s: plain http is allowed only on loopback with --dev", u))
			}
		default:
			errs = append(errs, fmt.Errorf("--control-plane %s: must be https:// (http:// only with --dev on loopback)", u))
		}
	}
	if c.Credential.Name == "" || c.Credential.Token == "" {
		errs = append(errs, errors.New("--join-credential is required (gwctl dataplane token create NAME)"))
	}
	if !c.Dev && c.Credential.CAFingerprint == "" {
		errs = append(errs, errors.New("the join credential carries no CA fingerprint; it can only be used with --dev"))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("--listen is required"))
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together: give both or neither"))
	}
	if c.Listen != "" && c.TLSCert == "" && !c.PlaintextListen && !loopbackListen(c.Listen) {
		errs = append(errs, fmt.Errorf("--listen %s is not a loopback address: serve TLS (--tls-cert/--tls-key), or accept plaintext HTTP with --plaintext-listen (agents' credentials then cross the network unencrypted)", c.Listen))
	}
	if c.DegradedAfter == 0 {
		c.DegradedAfter = DefaultDegradedAfter
	}
	if c.MaxStale == 0 {
		c.MaxStale = DefaultMaxStale
	}
	if c.RolloutSummaryInterval == 0 {
		c.RolloutSummaryInterval = DefaultRolloutSummaryInterval
	}
	if c.RolloutSummaryInterval < 100*time.Millisecond || c.RolloutSummaryInterval > time.Hour {
		errs = append(errs, errors.New("--rollout-summary-interval must be between 100ms and 1h"))
	}
	if c.DegradedAfter < 0 || c.MaxStale < 0 || c.MaxStale < c.DegradedAfter {
		errs = append(errs, errors.New("--degraded-after and --max-stale must be positive, with --max-stale ≥ --degraded-after"))
	}
	if u := c.AuditOTLPEndpoint; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		errs = append(errs, fmt.Errorf("--audit-otlp-endpoint %q: want an http:// or https:// URL", u))
	}
	if err := c.Tracing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := auditredact.New(c.AuditRedact); err != nil {
		errs = append(errs, fmt.Errorf("--audit-redact: %w", err))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

func loopbackURL(u string) bool {
	rest := strings.TrimPrefix(u, "http://")
	host := rest
	if i := strings.IndexAny(rest, "/"); i >= 0 {
		host = rest[:i]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

// loopbackListen reports whether a host:port listen address binds only
// loopback ("localhost" counts; an empty host binds every address).
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
