// Package refusals keeps the record of requests a data plane refused
// before it could tell which agent sent them: no credential, an unknown,
// malformed or expired one, a forged certificate. Such requests cost the
// gateway next to nothing and may come by the million (a scan, a flood), so
// they are not audited one record each, which would let anyone without a
// credential fill the audit disk. Instead they are counted per (source
// network, reason) and the audit log gets one summary record per pair and
// interval (10 s by default) with the count and the first and last time.
// Every refusal is also counted in metrics at once, and a rate-limited log
// line names the busiest sources once per interval.
//
// Memory is bounded: at most MaxKeys pairs are counted per interval; the
// refusals of further pairs are counted under the network "other".
package refusals

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Defaults.
const (
	DefaultInterval = 10 * time.Second
	DefaultMaxKeys  = 4096
)

// Writer records audit records; Write returns once the record is recorded.
// It must be safe for concurrent use.
type Writer interface {
	Write(ctx context.Context, r *auditv1.Record) error
}

// Options configure a Recorder.
type Options struct {
	// Writer receives the summary records (required).
	Writer Writer
	// Dataplane names this data plane in records.
	Dataplane string
	// Interval is how long refusals are counted before a summary is
	// written (DefaultInterval when zero).
	Interval time.Duration
	// MaxKeys bounds the (network, reason) pairs of one interval
	// (DefaultMaxKeys when zero).
	MaxKeys int
	// Count, when set, is called once per refusal (metrics).
	Count func(reason string)
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Recorder counts anonymous refusals and writes their summaries. It is
// safe for concurrent use.
type Recorder struct {
	o Options

	mu     sync.Mutex
	counts map[key]*entry
	lost   uint64 // summaries that could not be written (logged)
}

type key struct {
	network string
	reason  string
}

type entry struct {
	count       uint64
	first, last time.Time
}

// OtherNetwork is the network refusals are counted under once MaxKeys
// pairs are in use in an interval.
const OtherNetwork = "other"

// New returns a Recorder; call Run to write summaries.
func New(o Options) *Recorder {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{o: o, counts: map[key]*entry{}}
}

// Network is the source network a refusal is counted under: the /24 of
// an IPv4 address, the /48 of an IPv6 one, "unknown" without an address.
func Network(src netip.Addr) string {
	if !src.IsValid() {
		return "unknown"
	}
	src = src.Unmap()
	bits := 48
	if src.Is4() {
		bits = 24
	}
	p, err := src.Prefix(bits)
	if err != nil {
		return "unknown"
	}
	return p.String()
}

// Refused counts one refused request from src for reason.
func (r *Recorder) Refused(src netip.Addr, reason string) {
	if r == nil {
		return
	}
	if r.o.Count != nil {
		r.o.Count(reason)
	}
	now := r.o.Now()
	k := key{network: Network(src), reason: reason}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.counts[k]
	if e == nil {
		if len(r.counts) >= r.o.MaxKeys {
			k.network = OtherNetwork
			e = r.counts[k]
		}
		if e == nil {
			e = &entry{first: now}
			r.counts[k] = e
		}
	}
	e.count++
	e.last = now
}

// Run writes a summary every interval until ctx ends, then writes the
// last one.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
			r.Flush(ctx)
		}
	}
}

// Flush writes one summary record per (network, reason) counted since the
// last flush, in a stable order, and logs the interval's busiest sources
// in one line. A record that cannot be written is logged and dropped: the
// counts stay in metrics.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	counts := r.counts
	r.counts = make(map[key]*entry, len(counts))
	r.mu.Unlock()
	if len(counts) == 0 {
		return
	}
	keys := make([]key, 0, len(counts))
	var total uint64
	for k, e := range counts {
		keys = append(keys, k)
		total += e.count
	}
	// Busiest first, then by name: the log line names the top sources.
	slices.SortFunc(keys, func(a, b key) int {
		ca, cb := counts[a].count, counts[b].count
		switch {
		case ca > cb:
			return -1
		case ca < cb:
			return 1
		case a.network != b.network:
			if a.network < b.network {
				return -1
			}
			return 1
		case a.reason < b.reason:
			return -1
		case a.reason > b.reason:
			return 1
		}
		return 0
	})
	for _, k := range keys {
		e := counts[k]
		rec := &auditv1.Record{
			Time:      timestamppb.New(e.first),
			Dataplane: r.o.Dataplane,
			Kind:      auditv1.EventKind_EVENT_KIND_REFUSAL_SUMMARY,
			Outcome:   "refused",
			Reason:    k.reason,
			Detail: &auditv1.Record_RefusalSummary{RefusalSummary: &auditv1.RefusalSummary{
				SourceNetwork: k.network,
				Reason:        k.reason,
				Count:         e.count,
				First:         timestamppb.New(e.first),
				Last:          timestamppb.New(e.last),
			}},
		}
		if err := r.o.Writer.Write(ctx, rec); err != nil {
			r.mu.Lock()
			r.lost++
			r.mu.Unlock()
			r.o.Logger.Error("a summary of refused anonymous requests could not be audited",
				"network", k.network, "reason", k.reason, "count", e.count, "err", err)
		}
	}
	top := make([]string, 0, 3)
	for _, k := range keys[:min(3, len(keys))] {
		top = append(top, k.network+" "+k.reason)
	}
	r.o.Logger.Warn("refused requests without a valid credential", "count", total,
		"sources", len(keys), "busiest", top, "interval", r.o.Interval)
}
