// Package auditupload sends a data plane's audit records to the control
// plane, at least once: it asks a control-plane node which sequence it
// expects next, reads the local log from there (only fsynced records),
// uploads batches, and moves on when the node acknowledges. It runs beside
// the calls and never blocks them; on any failure it backs off, tries
// another node and asks again where the control plane stands, so an upload
// resumes where it stopped after either side restarts. The control plane
// deduplicates by (data plane, sequence).
//
// It never imports control-plane packages.
package auditupload

import (
	"context"
	"errors"
	"fmt"
	"github.com/portcullis-gw/portcullis/internal/backoff"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// Source is the local audit log. Implementations must be safe for use
// beside concurrent writes (audit.Log is).
type Source interface {
	// ReadFrom yields records from seq on, up to the last fsynced one.
	ReadFrom(seq uint64) iter.Seq2[*auditv1.Record, error]
	// Durable is the sequence of the last fsynced record.
	Durable() uint64
}

// Defaults for Config; the batch bounds are the control plane's.
const (
	DefaultMaxRecords = 1000
	DefaultMaxBytes   = 4 << 20
	DefaultPoll       = 200 * time.Millisecond
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	requestTimeout    = 30 * time.Second
)

// Config configures an Uploader. New fills the defaults.
type Config struct {
	// URLs are the control-plane API base URLs, as for the config stream.
	URLs []string
	// Credential authenticates the data plane (its token, role dataplane)
	// and pins the cluster CA.
	Credential joincred.Credential
	// Dev allows plaintext http:// URLs.
	Dev bool
	// Log is the local audit log.
	Log Source
	// Logger receives state changes; repeats go to debug.
	Logger *slog.Logger
	// MaxRecords and MaxBytes bound a batch (defaults 1,000 and 4 MiB of
	// encoded records).
	MaxRecords, MaxBytes int
	// Poll is how often an idle uploader looks for new records.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the jittered wait after a failure.
	MinBackoff, MaxBackoff time.Duration
}

type target struct {
	url string
	rpc auditv1connect.AuditServiceClient
	tr  *http.Transport
}

// Uploader runs the upload loop. Run it once; Acked and Lag may be called
// from any goroutine.
type Uploader struct {
	cfg     Config
	log     *slog.Logger
	targets []*target
	acked   atomic.Uint64 // the control plane holds every record up to this
	lastErr string        // Run goroutine only
	// caughtUp is when the control plane last held every durable record
	// (unix nanoseconds; the start until it first answers).
	caughtUp atomic.Int64
}

// New checks cfg and returns an Uploader. It does not dial.
func New(cfg Config) (*Uploader, error) {
	if len(cfg.URLs) == 0 || cfg.Log == nil || cfg.Credential.Token == "" {
		return nil, errors.New("audit upload: control-plane URLs, a join credential and the audit log are required")
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	u := &Uploader{cfg: cfg, log: cfg.Logger.With("component", "auditupload")}
	u.caughtUp.Store(time.Now().UnixNano())
	auth := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+cfg.Credential.Token)
			return next(ctx, req)
		}
	})
	for _, raw := range cfg.URLs {
		base, tr, err := syncclient.Transport(raw, cfg.Credential, cfg.Dev, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("audit upload: %w", err)
		}
		u.targets = append(u.targets, &target{url: base, tr: tr,
			rpc: auditv1connect.NewAuditServiceClient(&http.Client{Transport: tr}, base, connect.WithInterceptors(auth))})
	}
	return u, nil
}

// Acked is the last sequence the control plane acknowledged holding (0
// until it first answers).
func (u *Uploader) Acked() uint64 { return u.acked.Load() }

// Lag is how many fsynced local records the control plane has not
// acknowledged yet (all of them until it first answers).
func (u *Uploader) Lag() uint64 {
	d, a := u.cfg.Log.Durable(), u.acked.Load()
	if d > a {
		return d - a
	}
	return 0
}

// Behind is how long the control plane has been missing records: 0 when
// it holds every durable record, else the time since it last did (an
// upper bound on the age of the oldest record not uploaded yet).
func (u *Uploader) Behind(now time.Time) time.Duration {
	if u.Lag() == 0 {
		return 0
	}
	return max(now.Sub(time.Unix(0, u.caughtUp.Load())), 0)
}

// Run uploads until ctx ends.
func (u *Uploader) Run(ctx context.Context) error {
	defer func() {
		for _, t := range u.targets {
			t.tr.CloseIdleConnections()
		}
	}()
	i := rand.N(len(u.targets)) //nolint:gosec // spreading load, not a secret
	var next uint64             // 0: ask the node where it stands
	failures := 0
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t := u.targets[i]
		err := u.step(ctx, t, &next)
		switch {
		case err == nil:
			failures = 0
			continue
		case errors.Is(err, errIdle):
			failures = 0
			if !sleep(ctx, u.cfg.Poll) {
				return ctx.Err()
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		}
		u.report(t.url, err)
		next = 0
		i = (i + 1) % len(u.targets)
		if !sleep(ctx, u.backoff(failures)) {
			return ctx.Err()
		}
		failures++
	}
}

var errIdle = errors.New("nothing to upload")

// step does one round: learn where the node stands if unknown, then send
// one batch if there is one.
func (u *Uploader) step(ctx context.Context, t *target, next *uint64) error {
	if *next == 0 {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		res, err := t.rpc.UploadState(cctx, connect.NewRequest(&auditv1.UploadStateRequest{}))
		cancel()
		if err != nil {
			return fmt.Errorf("ask where the control plane stands: %w", err)
		}
		*next = max(res.Msg.GetNextSequence(), 1)
		u.ack(*next)
	}
	if u.cfg.Log.Durable() < *next {
		u.caughtUp.Store(time.Now().UnixNano())
		return errIdle
	}
	batch, err := u.read(*next)
	if err != nil {
		return err
	}
	if len(batch) == 0 {
		return errIdle
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	res, err := t.rpc.Upload(cctx, connect.NewRequest(&auditv1.UploadRequest{Records: batch}))
	cancel()
	if err != nil {
		return fmt.Errorf("upload records %d-%d: %w", batch[0].GetSequence(), batch[len(batch)-1].GetSequence(), err)
	}
	n := max(res.Msg.GetNextSequence(), 1)
	if n != batch[len(batch)-1].GetSequence()+1 {
		u.log.InfoContext(ctx, "control plane continues the upload from another sequence", "sent_from", batch[0].GetSequence(), "next", n)
	}
	*next = n
	u.ack(n)
	if u.lastErr != "" {
		u.log.InfoContext(ctx, "audit upload resumed", "control_plane", t.url, "acked", n-1)
		u.lastErr = ""
	}
	return nil
}

func (u *Uploader) ack(next uint64) {
	u.acked.Store(next - 1)
	if u.cfg.Log.Durable() < next {
		u.caughtUp.Store(time.Now().UnixNano())
	}
}

// read collects the next batch from the local log.
func (u *Uploader) read(from uint64) ([]*auditv1.Record, error) {
	var (
		batch []*auditv1.Record
		size  int
	)
	for r, err := range u.cfg.Log.ReadFrom(from) {
		if err != nil {
			return nil, fmt.Errorf("read the local audit log from %d: %w", from, err)
		}
		n := proto.Size(r) + 8
		if len(batch) > 0 && size+n > u.cfg.MaxBytes {
			break
		}
		batch = append(batch, r)
		size += n
		if len(batch) >= u.cfg.MaxRecords {
			break
		}
	}
	return batch, nil
}

// report logs a failure once per kind; repeats go to debug.
func (u *Uploader) report(url string, err error) {
	kind := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		kind = ce.Code().String()
	}
	if kind != u.lastErr {
		u.log.Warn("audit upload failed; retrying with backoff (calls go on, records stay in the local log)", "control_plane", url, "err", err)
		u.lastErr = kind
		return
	}
	u.log.Debug("audit upload failed", "control_plane", url, "err", err)
}

// backoff is the wait after the n-th consecutive failure (backoff.Wait).
func (u *Uploader) backoff(n int) time.Duration {
	return backoff.Wait(u.cfg.MinBackoff, u.cfg.MaxBackoff, n)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
