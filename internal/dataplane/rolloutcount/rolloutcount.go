// Package rolloutcount counts a data plane's tool calls during a policy
// rollout — per rollout step, agent, tool and cohort: calls, decision
// changes, candidate evaluation errors, forwarded calls and upstream
// failures — and writes the counts to the audit log as one
// EVENT_KIND_ROLLOUT_SUMMARY record per step and interval. The records
// reach the control plane with the rest of the audit log, where the
// rollout controller on the leader judges the rollout's gates from them:
// the counts are replicated and survive any node, and no count waits on
// the network.
//
// It also picks the calls whose other decision goes into their own audit
// record: the first few that differ per step, agent, tool and kind of
// difference in each interval.
//
// Memory is bounded: at most MaxKeys (agent, tool, cohort) rows per step
// and interval; further calls are counted under agent and tool "other".
package rolloutcount

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Defaults.
const (
	DefaultInterval = 10 * time.Second
	DefaultMaxKeys  = 4096
	// DefaultSamples is how many differing calls per step, agent, tool
	// and kind of difference keep their other decision per interval.
	DefaultSamples = 5
	// Other names the agent and tool of the calls counted beyond MaxKeys.
	Other = "other"
)

// Writer records audit records; Write returns once the record is
// recorded. It must be safe for concurrent use.
type Writer interface {
	Write(ctx context.Context, r *auditv1.Record) error
}

// Options configure a Recorder.
type Options struct {
	// Writer receives the summary records (required).
	Writer Writer
	// Dataplane names this data plane in records.
	Dataplane string
	// Interval between summaries (DefaultInterval when zero).
	Interval time.Duration
	// MaxKeys bounds the rows of one step per interval.
	MaxKeys int
	// Samples bounds the sampled calls (see DefaultSamples; negative:
	// none).
	Samples int
	// Mode, when set, names the serving mode in records.
	Mode   func() string
	Now    func() time.Time
	Logger *slog.Logger
}

type stepKey struct {
	rollout, stage string
	bp             uint32
}

type rowKey struct {
	agent, tool, cohort string
}

type sampleKey struct {
	row  rowKey
	kind uint8
}

type step struct {
	rows        map[rowKey]*auditv1.RolloutCount
	samples     map[sampleKey]int
	first, last time.Time
}

// Recorder counts rollout calls and writes their summaries. It is safe
// for concurrent use.
type Recorder struct {
	o Options

	mu    sync.Mutex
	steps map[stepKey]*step
}

var _ stages.RolloutRecorder = (*Recorder)(nil)

// New returns a Recorder; call Run to write summaries.
func New(o Options) *Recorder {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Samples == 0 {
		o.Samples = DefaultSamples
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{o: o, steps: map[stepKey]*step{}}
}

// Record implements stages.RolloutRecorder.
func (r *Recorder) Record(o stages.RolloutOutcome) bool {
	sk := stepKey{rollout: o.Rollout, stage: o.Stage, bp: o.BasisPoints}
	rk := rowKey{agent: o.Agent, tool: o.Tool, cohort: o.Cohort}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.steps[sk]
	if s == nil {
		s = &step{rows: map[rowKey]*auditv1.RolloutCount{}, samples: map[sampleKey]int{}, first: o.Time}
		r.steps[sk] = s
	}
	if o.Time.Before(s.first) {
		s.first = o.Time
	}
	if o.Time.After(s.last) {
		s.last = o.Time
	}
	c := s.rows[rk]
	if c == nil {
		if len(s.rows) >= r.o.MaxKeys {
			rk.agent, rk.tool = Other, Other
			c = s.rows[rk]
		}
		if c == nil {
			c = &auditv1.RolloutCount{Agent: rk.agent, Tool: rk.tool, Cohort: rk.cohort}
			s.rows[rk] = c
		}
	}
	c.Calls++
	var kind uint8
	if o.AllowToDeny {
		c.AllowToDeny++
		kind = 1
	}
	if o.DenyToAllow {
		c.DenyToAllow++
		kind = 2
	}
	if o.EvalError {
		c.EvalErrors++
		kind |= 4
	}
	if o.Forwarded {
		c.Forwarded++
	}
	if o.UpstreamError {
		c.UpstreamErrors++
	}
	if kind == 0 || r.o.Samples < 0 {
		return false
	}
	k := sampleKey{row: rk, kind: kind}
	if s.samples[k] >= r.o.Samples {
		return false
	}
	s.samples[k]++
	return true
}

// Run writes the summaries every interval until ctx ends, then writes
// the last ones.
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

// Flush writes one summary record per step counted since the last flush,
// with its rows in a stable order. A record that cannot be written is
// logged and its counts are lost to the controller (the audit log that
// failed refuses calls anyway).
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	steps := r.steps
	r.steps = make(map[stepKey]*step, len(steps))
	r.mu.Unlock()
	keys := make([]stepKey, 0, len(steps))
	for k := range steps {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b stepKey) int {
		return cmp.Or(cmp.Compare(a.rollout, b.rollout), cmp.Compare(a.stage, b.stage), cmp.Compare(a.bp, b.bp))
	})
	for _, k := range keys {
		s := steps[k]
		sum := &auditv1.RolloutSummary{
			Rollout: k.rollout, Stage: k.stage, CanaryBasisPoints: k.bp,
			First: timestamppb.New(s.first), Last: timestamppb.New(s.last),
		}
		for _, c := range s.rows {
			sum.Counts = append(sum.Counts, c)
		}
		slices.SortFunc(sum.Counts, func(a, b *auditv1.RolloutCount) int {
			return cmp.Or(cmp.Compare(a.GetAgent(), b.GetAgent()), cmp.Compare(a.GetTool(), b.GetTool()), cmp.Compare(a.GetCohort(), b.GetCohort()))
		})
		rec := &auditv1.Record{
			Time: timestamppb.New(r.o.Now()), Dataplane: r.o.Dataplane, Kind: auditv1.EventKind_EVENT_KIND_ROLLOUT_SUMMARY,
			Method: "rollout/summary", Outcome: "ok", Detail: &auditv1.Record_RolloutSummary{RolloutSummary: sum},
		}
		if r.o.Mode != nil {
			rec.Mode = r.o.Mode()
		}
		if err := r.o.Writer.Write(ctx, rec); err != nil {
			r.o.Logger.ErrorContext(ctx, "could not write a rollout summary to the audit log", "rollout", k.rollout, "stage", k.stage, "err", err)
		}
	}
}
