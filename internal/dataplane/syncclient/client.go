// Package syncclient keeps a data plane's configuration in step with the
// control plane: it holds one ConfigSyncService.Watch stream open to one
// control-plane node at a time, hands every snapshot to the data plane,
// reports what became of it, and fails over between nodes with jittered
// exponential backoff when a stream breaks or goes silent.
//
// It never imports control-plane packages: the data plane shares only the
// generated API and the join credential with the control plane.
package syncclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1/configsyncv1connect"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// Applier is the data plane side of the stream. Implementations must be
// safe for concurrent use: the Client calls them from its Run goroutine
// while the data plane serves.
type Applier interface {
	// Apply validates a serialized portcullis.snapshot.v1.Snapshot
	// completely and swaps it in. A non-nil error means it was rejected
	// and the previous snapshot keeps serving; the error text is sent to
	// the control plane as the rejection reason, so it must not carry
	// secrets. The Version is the snapshot's, also when rejecting if it
	// could be read (zero otherwise).
	Apply(ctx context.Context, snapshot []byte) (Version, error)
	// Serving is the version in service (zero for none) and the current
	// mode.
	Serving() (Version, configsyncv1.Mode)
}

// Version is a snapshot version as the stream carries it: the epoch and
// the number within it (a Snapshot's epoch and version fields). Versions
// order by epoch, then number; epoch 0, from a control plane that sends
// none, reads as 1.
type Version struct {
	Epoch, Number uint64
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	ve, we := max(v.Epoch, 1), max(w.Epoch, 1)
	return ve < we || ve == we && v.Number < w.Number
}

// IsZero reports whether v names no version.
func (v Version) IsZero() bool { return v.Number == 0 }

func (v Version) String() string { return fmt.Sprintf("%d (epoch %d)", v.Number, max(v.Epoch, 1)) }

// heartbeatVersion is the version a heartbeat says its node holds.
func heartbeatVersion(hb *configsyncv1.Heartbeat) Version {
	return Version{Epoch: hb.GetEpoch(), Number: hb.GetVersion()}
}

// Defaults for Config.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// DefaultHeartbeatTimeout is three of the control plane's default 2s
	// heartbeat intervals.
	DefaultHeartbeatTimeout = 6 * time.Second
	// DefaultMaxSnapshotBytes bounds one received message.
	DefaultMaxSnapshotBytes = 64 << 20
)

// Config configures a Client. New fills the defaults.
type Config struct {
	// URLs are control-plane API base URLs: https://host:port, or
	// http://host:port only when Dev is set.
	URLs []string
	// Credential is the data plane's join credential: its name, bearer
	// token and the cluster CA fingerprint https URLs are pinned to.
	Credential joincred.Credential
	// Dev allows plaintext http:// URLs (HTTP/2 without TLS).
	Dev bool
	// Applier receives the snapshots.
	Applier Applier
	// OnContact, if set, is called from the Run goroutine on every message
	// received (snapshot or heartbeat), before it is handled; typically the
	// mode tracker's Contact. It must not block.
	OnContact func()
	// OnAttempt, if set, is called from the Run goroutine whenever a
	// stream attempt ends, with the URL and the error that ended it: each
	// reconnect, for metrics and for tests that watch the client from
	// outside. It must not block.
	OnAttempt func(url string, err error)
	// Logger receives one line per state change (connected, disconnected,
	// applied, rejected, a new kind of failure); repeats go to debug.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts: the n-th
	// consecutive failure waits a uniformly random time between MinBackoff
	// and min(MaxBackoff, MinBackoff·2ⁿ). Defaults 200ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// HeartbeatTimeout is how long a stream may stay silent before it is
	// dropped and another node is dialed. Default 6s.
	HeartbeatTimeout time.Duration
	// MaxSnapshotBytes bounds one received message. Default 64 MiB.
	MaxSnapshotBytes int
	// Quarantines, if set, returns the tools the data plane quarantined
	// and a generation that changes whenever they do. Every report carries
	// them, and a change alone is reported with the next message from the
	// control plane (heartbeats come every 2s). It must be safe to call
	// from the Run goroutine and must not block.
	Quarantines func() (generation uint64, tools []*configsyncv1.QuarantinedTool)
	// Rollout, if set, returns the policy rollout the serving version
	// stages (zero for none); every report carries it. It must be safe to
	// call from the Run goroutine and must not block.
	Rollout func() Rollout
}

// Rollout is a staged policy rollout as a status report names it.
type Rollout struct {
	// ID is the rollout's id; Stage "shadow" or "canary"; BasisPoints the
	// canary's share.
	ID, Stage   string
	BasisPoints uint32
}

// target is one control-plane URL and the API client for it.
type target struct {
	url string
	rpc configsyncv1connect.ConfigSyncServiceClient
	tr  *http.Transport
}

// Client runs the config-sync stream. Run it once; Connected may be called
// from any goroutine.
type Client struct {
	cfg        Config
	log        *slog.Logger
	targets    []*target
	transports []*http.Transport

	running   atomic.Bool
	connected atomic.Bool
	// leaseTarget is the index of the target the last lease request
	// reached.
	leaseTarget atomic.Int64

	// Test hook (export_test.go). start < 0 picks a random first URL.
	start int

	// State of the Run goroutine only.
	failures      map[string]connect.Code // last failure logged per URL
	nack          *nack                   // the newest rejection not yet superseded
	lastReportErr connect.Code
	// quarantineGen is the Quarantines generation the last successful
	// report carried; reportedQuarantines whether there was one.
	quarantineGen       uint64
	reportedQuarantines bool
}

// nack is a rejected version and why.
type nack struct {
	version Version
	reason  string
}

// New checks cfg and returns a Client. It does not dial.
func New(cfg Config) (*Client, error) {
	var errs []error
	if len(cfg.URLs) == 0 {
		errs = append(errs, errors.New("at least one control-plane URL is required"))
	}
	if cfg.Credential.Name == "" || cfg.Credential.Token == "" {
		errs = append(errs, errors.New("the join credential needs a name and a token"))
	}
	if cfg.Applier == nil {
		errs = append(errs, errors.New("an Applier is required"))
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.HeartbeatTimeout < 0 || cfg.MaxSnapshotBytes < 0 {
		errs = append(errs, errors.New("durations and sizes must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("config sync client: %w", err)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if cfg.MaxSnapshotBytes == 0 {
		cfg.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if cfg.OnContact == nil {
		cfg.OnContact = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "syncclient", "dataplane", cfg.Credential.Name),
		start:    -1,
		failures: map[string]connect.Code{},
	}
	if err := c.buildTargets(); err != nil {
		return nil, fmt.Errorf("config sync client: %w", err)
	}
	return c, nil
}

// buildTargets validates the URLs and creates one transport per scheme.
func (c *Client) buildTargets() error {
	var tlsTr, h2cTr *http.Transport
	for _, raw := range c.cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("control-plane URL %q: %w", raw, err)
		}
		if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("control-plane URL %q: want scheme://host:port", raw)
		}
		var tr *http.Transport
		switch u.Scheme {
		case "https":
			if tlsTr == nil {
				cfg, err := PinnedTLSConfig(c.cfg.Credential.CAFingerprint)
				if err != nil {
					return fmt.Errorf("https needs the cluster CA fingerprint from the join credential: %w", err)
				}
				tlsTr = newTransport(cfg, c.cfg.HeartbeatTimeout)
				c.transports = append(c.transports, tlsTr)
			}
			tr = tlsTr
		case "http":
			if !c.cfg.Dev {
				return fmt.Errorf("control-plane URL %q: plaintext http:// is allowed only in dev mode", raw)
			}
			if h2cTr == nil {
				h2cTr = newTransport(nil, c.cfg.HeartbeatTimeout)
				c.transports = append(c.transports, h2cTr)
			}
			tr = h2cTr
		default:
			return fmt.Errorf("control-plane URL %q: scheme must be https", raw)
		}
		base := strings.TrimSuffix(u.String(), "/")
		c.targets = append(c.targets, &target{
			url: base,
			tr:  tr,
			rpc: configsyncv1connect.NewConfigSyncServiceClient(&http.Client{Transport: tr}, base,
				connect.WithReadMaxBytes(c.cfg.MaxSnapshotBytes)),
		})
	}
	return nil
}

// Connected reports whether a stream is open and has delivered a message.
func (c *Client) Connected() bool { return c.connected.Load() }

// authorize adds the credential's bearer token to h.
func (c *Client) authorize(h http.Header) {
	h.Set("Authorization", "Bearer "+c.cfg.Credential.Token)
}
