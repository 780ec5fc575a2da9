// Package auditconsumer is the leader's audit consumer: one mechanism that
// reads the audit records the control plane stores, in the order the
// cluster committed them, and feeds state derived from them — learned
// lists and alerts today, budgets and usage later. Each registered
// Consumer has its own cursor in the replicated state (an AuditCursor
// resource), so a new leader resumes where the last applied batch left
// off: it never skips a record and never counts one twice.
//
// Exactly once, across failovers: a batch is one ConsumeAudit command
// that carries both what the consumer derived and the move of its cursor,
// and names the number of batches the cursor had counted when it was
// read. The state machine applies it only on that count, so a batch
// proposed twice — a proposal retried after a lost answer, or two nodes
// that both believe they lead for a moment — changes the state once; the
// other is refused (ABORTED) and its proposer reads the cursor again.
//
// A consumer that starts on a cluster with history begins at the end of
// the store: records stored before its cursor existed are not consumed
// as batches. A consumer that needs history reads it once from
// Batch.Audit, as a pending piece of work (learned lists seed themselves
// from history this way; see Consumer.Pending).
//
// # Adding a consumer (the seam budgets and usage build on)
//
// A consumer is a deterministic function from (the state, the records
// after its cursor, in order) to a change of derived state. To add one:
//
//  1. Implement Consumer in its own package (package learn and package
//     alerting are the two examples). Consume reads Batch.Records and
//     Batch.State and writes only to Batch.Out; it must not write to the
//     store itself, or the derived state and the cursor could part.
//  2. Give what it derives a field of fsmv1.ConsumeAudit, and apply that
//     field in state's consume (state/consume.go), in the same
//     transaction as the cursor's move, refusing (never panicking on)
//     content over limits.ConsumeBatch-style bounds. If the new field is
//     something an older replica must not ignore, ask for a new cluster
//     version for it in clusterversion.Needs.
//  3. Register it in the Runner's Config.Consumers (server.go), where the
//     Runner runs as a singleton.Job on the elected node, with Raft or
//     etcd alike.
//
// What the runner guarantees every consumer: batches are derived and
// applied one at a time, in storage order per chain; a batch is applied
// at most once (the AfterBatch count); a batch that was not applied is
// derived again from the same cursor, possibly with more records, on
// this node or the next elected one. So a consumer counts every record
// exactly once if, and only if, everything it derives travels in Out.
package auditconsumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Consumer derives state from audit records. The runner calls its methods
// from one goroutine at a time, on the leader only.
type Consumer interface {
	// Name names the consumer and its cursor: a DNS label that never
	// changes (renaming a consumer starts a new cursor).
	Name() string
	// Consume derives what one batch changes and adds it to b.Out. It may
	// be called with no records, when Pending said so. An error retries
	// the batch later, from the same cursor.
	Consume(ctx context.Context, b *Batch) error
	// Pending reports whether the consumer has work in st even without new
	// records (seeding a list from history).
	Pending(st *state.State) bool
}

// Batch is one batch of a consumer: the records after its cursor, the
// state it will be applied to, and the command being built.
type Batch struct {
	// State is the state the batch is derived from; the command is
	// refused if the consumer's cursor moved since.
	State *state.State
	// Cursor is the next sequence of each chain before the batch (a chain
	// it does not name counts from 1). Records below it were consumed.
	Cursor map[string]uint64
	// Records are the records the batch consumes, in storage order.
	Records []*auditv1.Record
	// Audit is this node's audit store, for reading history.
	Audit *auditstore.Store
	// Out is the command; the consumer adds its learned values, seeded
	// lists and alerts.
	Out *fsmv1.ConsumeAudit
}

// ErrBatchTooLarge is what Consume returns when what a batch derives does
// not fit one command (limits.ConsumeBatch): the runner reads fewer
// records and asks again, down to one record, with which the consumer
// must make do.
var ErrBatchTooLarge = errors.New("the batch derives more than one command may carry")

// Applier proposes commands: the store. Implementations must be safe for
// concurrent use.
type Applier interface {
	Apply(ctx context.Context, cmd *fsmv1.Command) (*fsmv1.Result, error)
	State(ctx context.Context, linearizable bool) (*state.State, error)
	Changed() <-chan struct{}
}

// Defaults of Config.
const (
	DefaultInterval  = 100 * time.Millisecond
	DefaultBatchSize = 1000
)

// Config configures a Runner.
type Config struct {
	Store Applier
	Audit *auditstore.Store
	// NodeID names the node in the commands' actor ("node:<id>").
	NodeID    string
	Consumers []Consumer
	// Interval is the least time between two batches of one consumer
	// (default 100ms): records arriving meanwhile join the next batch.
	Interval time.Duration
	// BatchSize bounds the records of a batch (default 1,000).
	BatchSize int
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Runner runs the consumers on the leader.
type Runner struct {
	cfg Config
	log *slog.Logger
}

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{cfg: cfg, log: cfg.Logger.With("component", "auditconsumer")}
}

// Run runs every consumer until ctx ends: a leadership term. Each
// consumer reads its cursor linearizably when the term starts.
func (r *Runner) Run(ctx context.Context) {
	done := make(chan struct{}, len(r.cfg.Consumers))
	for _, c := range r.cfg.Consumers {
		go func() {
			defer func() { done <- struct{}{} }()
			r.runOne(ctx, c)
		}()
	}
	for range r.cfg.Consumers {
		<-done
	}
}

// cursor is a consumer's position: the replicated cursor, and where this
// node's store is read from next.
type cursor struct {
	next    map[string]uint64
	batches uint64
	pos     auditstore.Position
}

func cursorOf(st *state.State, name string) (cursor, bool) {
	r, ok := st.Get(resource.AuditCursor, name)
	if !ok {
		return cursor{}, false
	}
	c := r.GetAuditCursor()
	cur := cursor{next: make(map[string]uint64, len(c.GetMarks())), batches: c.GetBatches()}
	for _, m := range c.GetMarks() {
		cur.next[m.GetDataplane()] = m.GetNext()
	}
	return cur, true
}

// runOne runs one consumer for a term.
func (r *Runner) runOne(ctx context.Context, c Consumer) {
	log := r.log.With("consumer", c.Name())
	if !r.awaitVersion(ctx) {
		return
	}
	var cur cursor
	backoff := r.cfg.Interval
	fail := func(msg string, err error) bool {
		log.WarnContext(ctx, msg, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		return true
	}
	for started := false; !started; {
		var err error
		if cur, err = r.start(ctx, c); err == nil {
			started = true
		} else if ctx.Err() != nil || !fail("audit consumer cannot start; retrying", err) {
			return
		}
	}
	log.InfoContext(ctx, "audit consumer running on this leader", "batches", cur.batches)
	last := time.Time{}
	size := r.cfg.BatchSize
	for ctx.Err() == nil {
		// At most one batch per interval: what arrives meanwhile joins it.
		if wait := r.cfg.Interval - r.cfg.Now().Sub(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		appended := r.cfg.Audit.Appended()
		changed := r.cfg.Store.Changed()
		st, _ := r.cfg.Store.State(ctx, false)
		recs, pos, err := r.cfg.Audit.ReadAfter(cur.next, cur.pos, size)
		if err != nil {
			if !fail("audit consumer cannot read the audit store; retrying", err) {
				return
			}
			continue
		}
		if len(recs) == 0 && !c.Pending(st) {
			cur.pos = pos
			select {
			case <-ctx.Done():
				return
			case <-appended:
			case <-changed:
			}
			continue
		}
		last = r.cfg.Now()
		next, err := r.batch(ctx, c, st, cur, recs)
		switch {
		case err == nil:
			next.pos = pos
			cur = next
			backoff = r.cfg.Interval
			size = r.cfg.BatchSize
		case errors.Is(err, ErrBatchTooLarge) && size > 1:
			size = max(1, size/2)
			log.InfoContext(ctx, "audit consumer batch too large for one command; reading fewer records", "records", size)
			last = time.Time{}
		case errors.Is(err, errMoved):
			// Another batch was applied first (or this one already was):
			// read the cursor again, from the state this node applied.
			log.InfoContext(ctx, "audit cursor moved under this consumer; reading it again", "err", err)
			st, _ = r.cfg.Store.State(ctx, false)
			if again, ok := cursorOf(st, c.Name()); ok {
				cur = again
			}
		default:
			if !fail("audit consumer batch failed; retrying", err) {
				return
			}
		}
	}
}

// awaitVersion waits until every voter supports the audit consumers; false
// when ctx ends first.
func (r *Runner) awaitVersion(ctx context.Context) bool {
	logged := false
	for {
		changed := r.cfg.Store.Changed()
		st, _ := r.cfg.Store.State(ctx, false)
		if st != nil && clusterversion.Supports(st.Voters(), clusterversion.AuditConsumers) {
			return true
		}
		if !logged {
			r.log.InfoContext(ctx, "audit consumers wait until every voter supports cluster version 2", "version", clusterversion.AuditConsumers)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

// start reads the consumer's cursor linearizably, creating it (at the end
// of the store) when it has none.
func (r *Runner) start(ctx context.Context, c Consumer) (cursor, error) {
	st, err := r.cfg.Store.State(ctx, true)
	if err != nil {
		return cursor{}, fmt.Errorf("read the cursor: %w", err)
	}
	if cur, ok := cursorOf(st, c.Name()); ok {
		return cur, nil
	}
	marks := r.cfg.Audit.Marks()
	cmd := r.command(c, &fsmv1.ConsumeAudit{Consumer: c.Name(), Marks: markList(marks)})
	res, err := r.cfg.Store.Apply(ctx, cmd)
	if err != nil {
		return cursor{}, fmt.Errorf("create the cursor: %w", err)
	}
	if e := res.GetError(); e != nil && e.GetCode() != fsmv1.ErrorCode_ERROR_CODE_ABORTED {
		return cursor{}, fmt.Errorf("create the cursor: %s", e.GetMessage())
	}
	// Created by this command, or by another leader's just before.
	st, err = r.cfg.Store.State(ctx, false)
	if err != nil {
		return cursor{}, err
	}
	cur, ok := cursorOf(st, c.Name())
	if !ok {
		return cursor{}, errors.New("the cursor was not created")
	}
	r.log.InfoContext(ctx, "audit consumer starts at the end of the store", "consumer", c.Name(), "chains", len(marks))
	return cur, nil
}

// errMoved: the cursor is not where the batch was read from.
var errMoved = errors.New("the audit cursor moved")

// batch derives and applies one batch and returns the cursor after it.
func (r *Runner) batch(ctx context.Context, c Consumer, st *state.State, cur cursor, recs []*auditv1.Record) (cursor, error) {
	out := &fsmv1.ConsumeAudit{Consumer: c.Name(), AfterBatch: cur.batches, Records: uint64(len(recs))}
	next := make(map[string]uint64, len(cur.next))
	for k, v := range cur.next {
		next[k] = v
	}
	moved := map[string]uint64{}
	for _, rec := range recs {
		if n := rec.GetSequence() + 1; n > next[rec.GetDataplane()] {
			next[rec.GetDataplane()] = n
			moved[rec.GetDataplane()] = n
		}
	}
	out.Marks = markList(moved)
	b := &Batch{State: st, Cursor: cur.next, Records: recs, Audit: r.cfg.Audit, Out: out}
	if err := c.Consume(ctx, b); err != nil {
		return cur, fmt.Errorf("consume: %w", err)
	}
	res, err := r.cfg.Store.Apply(ctx, r.command(c, out))
	if err != nil {
		return cur, fmt.Errorf("apply the batch: %w", err)
	}
	if e := res.GetError(); e != nil {
		switch e.GetCode() {
		case fsmv1.ErrorCode_ERROR_CODE_ABORTED:
			return cur, fmt.Errorf("%w: %s", errMoved, e.GetMessage())
		case fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:
			// Over a limit of the command: fewer records derive less.
			return cur, fmt.Errorf("%w: %s", ErrBatchTooLarge, e.GetMessage())
		}
		return cur, fmt.Errorf("apply the batch: %s", e.GetMessage())
	}
	return cursor{next: next, batches: cur.batches + 1}, nil
}

// command wraps a batch in a command from this node.
func (r *Runner) command(c Consumer, op *fsmv1.ConsumeAudit) *fsmv1.Command {
	return &fsmv1.Command{
		Actor:  &configv1.Actor{TokenId: "node:" + r.cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:   timestamppb.New(r.cfg.Now()),
		Method: "audit consumer " + c.Name(),
		Op:     &fsmv1.Command_ConsumeAudit{ConsumeAudit: op},
	}
}

// markList turns chain → next into sorted marks.
func markList(m map[string]uint64) []*configv1.AuditMark {
	out := make([]*configv1.AuditMark, 0, len(m))
	for _, dp := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &configv1.AuditMark{Dataplane: dp, Next: m[dp]})
	}
	return out
}

// Lag is how many records this node's store holds that a cursor has not
// consumed.
func Lag(audit *auditstore.Store, c *configv1.AuditCursor) uint64 {
	next := make(map[string]uint64, len(c.GetMarks()))
	for _, m := range c.GetMarks() {
		next[m.GetDataplane()] = m.GetNext()
	}
	var lag uint64
	for chain, n := range audit.Marks() {
		have, ok := next[chain]
		if !ok {
			have = 1
		}
		if n > have {
			lag += n - have
		}
	}
	return lag
}
