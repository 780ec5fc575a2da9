// Package ratelimit enforces fleet-wide rate and concurrency limits on
// one data plane: each key of each limit has a local token bucket
// (golang.org/x/time/rate) and an in-flight counter sized by the lease the
// control-plane leader granted this data plane, so a call never waits on
// the network. Run reports the demand each key sees and applies the
// leases the leader answers with.
//
// Without a valid lease — before the first one for a key, and after one
// expired with no new one (no leader, or a new leader's quiet period) — a
// key gets the safe share: min(its last lease, limit ÷ the number of data
// planes the leader last counted). Leases and safe shares of all data
// planes together never exceed the limit; the README states the overshoot
// bound this leaves.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis-gw/portcullis/internal/dataplane/leasereport"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// MaxKeys bounds the keys one data plane tracks; a call of a new key
// beyond it is refused (callers control keys through user tokens).
const MaxKeys = 100_000

// maxKeyBytes is the longest key sent to the control plane (lease.MaxKeyBytes).
const maxKeyBytes = 512

// idleAfter is how long a key with no call and no lease is kept.
const idleAfter = time.Minute

// Metrics receives per-limit counts. Implementations must be safe for
// concurrent use and must not block.
type Metrics interface {
	// LimitAdmitted counts a call a limit admitted; LimitRefused one it
	// refused (shadow: one it would have refused).
	LimitAdmitted(limit string)
	LimitRefused(limit string, shadow bool)
	// LimitLease reports the calls per second this data plane may admit
	// under a limit, summed over its keys, after each lease round.
	LimitLease(limit string, perSecond float64)
}

// Limiter holds the limits and every key's bucket. Safe for concurrent
// use.
type Limiter struct {
	now     func() time.Time
	metrics Metrics

	mu     sync.RWMutex
	limits []*limit
	keys   map[entryID]*entry
	// dataplanes is the fleet size the leader last told (1 before it
	// has).
	dataplanes atomic.Int64
	// kick wakes Run when a key appears that holds no lease.
	kick chan struct{}
}

// New returns a Limiter with no limit. now is the clock (nil: time.Now);
// metrics may be nil.
func New(now func() time.Time, metrics Metrics) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{now: now, metrics: metrics, keys: map[entryID]*entry{}, kick: make(chan struct{}, 1)}
	l.dataplanes.Store(1)
	return l
}

// limit is a configured rate limit, compiled.
type limit struct {
	name     string
	rev      uint64
	key      []configv1.RateLimitKey
	rate     float64 // per second; 0: no rate limit
	burst    int64
	inFlight int64 // 0: no concurrency limit
	shadow   bool
	agents   []string
	teams    []string
	ups      []string
	tools    []string
	quota    *pipeline.Quota
}

type entryID struct{ limit, key string }

// entry is one key's local share of one limit.
type entry struct {
	l     *limit
	fleet *atomic.Int64
	mu    sync.Mutex
	// bucket enforces rate (nil when the limit has none).
	bucket *rate.Limiter
	// Current capacity: rate per second, bucket size, in-flight slots.
	rate     float64
	burst    int64
	slots    int64
	inFlight int64
	// The last lease (leased false: none yet) and when it expires.
	leased     bool
	leaseRate  float64
	leaseBurst int64
	leaseSlots int64
	expires    time.Time
	safe       bool // enforcing the safe share
	attempts   int64
	peak       int64
	lastUsed   time.Time
	lastReport time.Time
}

// Configure replaces the limits. Keys of a limit whose settings did not
// change keep their buckets and leases.
func (l *Limiter) Configure(rls []*configv1.RateLimit) {
	out := make([]*limit, 0, len(rls))
	for _, r := range rls {
		out = append(out, compile(r))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	byName := map[string]*limit{}
	for _, c := range out {
		byName[c.name] = c
	}
	for id, e := range l.keys {
		e.mu.Lock()
		if c := byName[id.limit]; c == nil || !same(c, e.l) {
			delete(l.keys, id)
		} else {
			e.l = c
		}
		e.mu.Unlock()
	}
	l.limits = out
}

func compile(r *configv1.RateLimit) *limit {
	c := &limit{
		name: r.GetMeta().GetName(), rev: r.GetMeta().GetRevision(), key: r.GetKey(), inFlight: r.GetMaxInFlight(),
		shadow: r.GetMode() == configv1.RateLimitMode_RATE_LIMIT_MODE_SHADOW,
		agents: r.GetAgents(), teams: r.GetTeams(), ups: r.GetUpstreams(), tools: r.GetTools(),
	}
	if r.GetRate() > 0 {
		per := time.Second
		switch r.GetPeriod() {
		case configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE:
			per = time.Minute
		case configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_HOUR:
			per = time.Hour
		}
		c.rate = float64(r.GetRate()) / per.Seconds()
		c.burst = r.GetBurst()
		if c.burst == 0 {
			c.burst = min(r.GetRate(), 1_000_000)
		}
		c.quota = &pipeline.Quota{Policy: c.name, Limit: r.GetRate(), Window: per}
	}
	return c
}

// same reports whether two compilations enforce alike.
func same(a, b *limit) bool {
	return a.rate == b.rate && a.burst == b.burst && a.inFlight == b.inFlight && slices.Equal(a.key, b.key)
}

// applies reports whether c counts against l, and under which key.
func (l *limit) applies(c *pipeline.Call) (string, bool) {
	agent, team := "", ""
	if c.Agent != nil {
		agent, team = c.Agent.GetMeta().GetName(), c.Agent.GetTeam()
	}
	if !matches(l.agents, agent) || !matches(l.teams, team) || !matches(l.ups, c.Target.Upstream) || !matches(l.tools, c.Target.Name) {
		return "", false
	}
	if len(l.key) == 0 {
		return "", true
	}
	var b strings.Builder
	for i, k := range l.key {
		if i > 0 {
			b.WriteByte(',')
		}
		var v string
		switch k {
		case configv1.RateLimitKey_RATE_LIMIT_KEY_AGENT:
			v = "agent=" + agent
		case configv1.RateLimitKey_RATE_LIMIT_KEY_TEAM:
			if team == "" {
				return "", false
			}
			v = "team=" + team
		case configv1.RateLimitKey_RATE_LIMIT_KEY_USER:
			if c.User == nil {
				return "", false
			}
			v = "user=" + c.User.Source + "/" + c.User.Name
		case configv1.RateLimitKey_RATE_LIMIT_KEY_UPSTREAM:
			v = "upstream=" + c.Target.Upstream
		case configv1.RateLimitKey_RATE_LIMIT_KEY_TOOL:
			v = "tool=" + c.Target.Name
		}
		b.WriteString(v)
	}
	key := b.String()
	if len(key) > maxKeyBytes {
		key = key[:maxKeyBytes]
	}
	return key, true
}

func matches(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }

// Admission is what Admit held: in-flight slots to give back.
type Admission struct {
	held []*entry
}

// Done gives back the in-flight slots; call it once, when the call ends.
func (a *Admission) Done() {
	for _, e := range a.held {
		e.mu.Lock()
		e.inFlight--
		e.mu.Unlock()
	}
}

// Admit checks c against every limit that applies to it. It returns a
// *pipeline.Refusal (rate_limited) when an enforced limit has no capacity
// for it now, taking nothing; otherwise an Admission whose Done must be
// called when the call ends. note names the limits that refused (or, in
// shadow mode, would have), nil when none.
func (l *Limiter) Admit(c *pipeline.Call) (*Admission, *pipeline.LimitNote, error) {
	l.mu.RLock()
	limits := l.limits
	l.mu.RUnlock()
	if len(limits) == 0 {
		return &Admission{}, nil, nil
	}
	now := l.now()
	adm := &Admission{}
	var reservations []*rate.Reservation
	var note *pipeline.LimitNote
	var refusal *pipeline.Refusal
	for _, lim := range limits {
		key, ok := lim.applies(c)
		if !ok {
			continue
		}
		e, err := l.entry(lim, key, now)
		if err != nil {
			adm.release(reservations, now)
			return nil, nil, err
		}
		res, wait, ok := e.take(now)
		if !ok {
			if note == nil {
				note = &pipeline.LimitNote{Shadow: true}
			}
			note.Limits = append(note.Limits, lim.name)
			if l.metrics != nil {
				l.metrics.LimitRefused(lim.name, lim.shadow)
			}
			if lim.shadow {
				continue
			}
			note.Shadow = false
			if refusal == nil {
				refusal = refuse(lim, key, wait)
			}
			continue
		}
		if res != nil {
			reservations = append(reservations, res)
		}
		if lim.inFlight > 0 {
			adm.held = append(adm.held, e)
		}
		if l.metrics != nil {
			l.metrics.LimitAdmitted(lim.name)
		}
	}
	if refusal != nil {
		adm.release(reservations, now)
		return nil, note, refusal
	}
	return adm, note, nil
}

// release undoes what Admit took before a later limit refused.
func (a *Admission) release(rs []*rate.Reservation, now time.Time) {
	for _, r := range rs {
		r.CancelAt(now)
	}
	a.Done()
}

func refuse(lim *limit, key string, wait time.Duration) *pipeline.Refusal {
	who := key
	if who == "" {
		who = "all matching calls"
	}
	r := pipeline.Refuse(pipeline.ReasonRateLimited, "rate limit %q: %s has no capacity left right now; retry after %s", lim.name, who, wait.Round(time.Millisecond))
	r.RetryAfter = max(wait, time.Millisecond)
	r.Quota = lim.quota
	return r
}

// entry finds or creates the key's entry; a new one starts on the safe
// share and wakes Run to ask for a lease.
func (l *Limiter) entry(lim *limit, key string, now time.Time) (*entry, error) {
	id := entryID{lim.name, key}
	l.mu.RLock()
	e := l.keys[id]
	l.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e = l.keys[id]; e != nil {
		return e, nil
	}
	if len(l.keys) >= MaxKeys {
		return nil, pipeline.Refuse(pipeline.ReasonRateLimited, "rate limit %q: this data plane tracks too many keys (%d) to admit a new one; retry later", lim.name, MaxKeys)
	}
	e = &entry{l: lim, fleet: &l.dataplanes, lastUsed: now}
	e.setSafe(now)
	l.keys[id] = e
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return e, nil
}

// take admits one call on e: a token from the bucket and an in-flight
// slot. It returns the token's reservation (to cancel if another limit
// refuses), or false with how long to wait, having taken nothing. (A
// shadow limit takes what an enforced one would, so that it refuses
// exactly what the enforced limit would.)
func (e *entry) take(now time.Time) (*rate.Reservation, time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.attempts++
	e.lastUsed = now
	if e.leased && !e.safe && now.After(e.expires) {
		e.toSafeLocked(now)
	}
	if e.l.inFlight > 0 && e.inFlight >= e.slots {
		return nil, time.Second, false
	}
	var res *rate.Reservation
	if e.bucket != nil {
		res = e.bucket.ReserveN(now, 1)
		if d := res.DelayFrom(now); !res.OK() || d > 0 {
			res.CancelAt(now)
			if !res.OK() || d == rate.InfDuration {
				d = time.Second
			}
			if e.rate <= 0 {
				d = time.Second
			}
			return nil, d, false
		}
	}
	if e.l.inFlight > 0 {
		e.inFlight++
		e.peak = max(e.peak, e.inFlight)
	}
	return res, 0, true
}

// setSafe puts e on the safe share: limit ÷ the fleet size the leader
// last told, and no more than its last lease if it had one.
func (e *entry) setSafe(now time.Time) {
	n := max(e.fleet.Load(), 1)
	r, slots := e.l.rate/float64(n), e.l.inFlight/n
	if e.leased {
		r, slots = min(r, e.leaseRate), min(slots, e.leaseSlots)
	}
	e.apply(r, burstOf(e.l, r), slots, now)
	e.safe = true
}

// toSafeLocked falls back from an expired lease to the safe share.
func (e *entry) toSafeLocked(now time.Time) { e.setSafe(now) }

// apply sets the entry's capacity.
func (e *entry) apply(r float64, burst, slots int64, now time.Time) {
	e.rate, e.burst, e.slots = r, burst, slots
	if e.l.rate <= 0 {
		return
	}
	if e.bucket == nil {
		e.bucket = rate.NewLimiter(rate.Limit(r), int(burst))
		return
	}
	e.bucket.SetLimitAt(now, rate.Limit(r))
	e.bucket.SetBurstAt(now, int(burst))
}

// burstOf is the bucket size for a share r of lim's rate: the same
// fraction of its burst, at least 1 when r admits anything.
func burstOf(lim *limit, r float64) int64 {
	if r <= 0 || lim.rate <= 0 {
		return 0
	}
	return max(int64(math.Floor(float64(lim.burst)*r/lim.rate)), 1)
}

// Demands returns the demand report for the leader: every key with calls
// since the last report or a lease, with its rate of calls since then
// (admitted or refused) and its peak in flight. It forgets keys idle for a
// minute that hold no lease.
func (l *Limiter) Demands() []*configsyncv1.Demand {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*configsyncv1.Demand, 0, len(l.keys))
	for id, e := range l.keys {
		e.mu.Lock()
		if now.Sub(e.lastUsed) > idleAfter && (!e.leased || now.After(e.expires)) {
			e.mu.Unlock()
			delete(l.keys, id)
			continue
		}
		elapsed := now.Sub(e.lastReport).Seconds()
		if e.lastReport.IsZero() || elapsed <= 0 {
			elapsed = 1
		}
		d := &configsyncv1.Demand{
			Limit: id.limit, Key: id.key, Rate: float64(e.attempts) / elapsed, InFlight: max(e.peak, e.inFlight),
			HaveRate: e.rate, HaveInFlight: e.slots,
		}
		e.attempts, e.peak, e.lastReport = 0, e.inFlight, now
		e.mu.Unlock()
		out = append(out, d)
	}
	return out
}

// Apply installs the leader's answer to a demand report sent at sent.
// A lease is valid for ValidFor from sent (so it expires here no later
// than the leader counts it).
func (l *Limiter) Apply(resp *configsyncv1.LeaseResponse, sent time.Time) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := int64(resp.GetDataplanes()); n > 0 {
		l.dataplanes.Store(n)
	}
	expires := sent.Add(resp.GetValidFor().AsDuration())
	for _, ls := range resp.GetLeases() {
		e := l.keys[entryID{ls.GetLimit(), ls.GetKey()}]
		if e == nil {
			continue
		}
		e.mu.Lock()
		e.leased, e.safe = true, false
		e.leaseRate, e.leaseBurst, e.leaseSlots, e.expires = finite(ls.GetRate()), max(ls.GetBurst(), 0), max(ls.GetInFlight(), 0), expires
		e.apply(e.leaseRate, e.leaseBurst, e.leaseSlots, now)
		e.mu.Unlock()
	}
	// Keys on the safe share follow the fleet size.
	sums := map[string]float64{}
	for id, e := range l.keys {
		e.mu.Lock()
		if e.safe {
			e.setSafe(now)
		}
		sums[id.limit] += e.rate
		e.mu.Unlock()
	}
	if l.metrics != nil {
		for _, lim := range l.limits {
			l.metrics.LimitLease(lim.name, sums[lim.name])
		}
	}
}

// Expire moves keys whose lease ran out to the safe share (Admit does it
// too, as calls arrive; Run calls this so that reports say what is
// enforced).
func (l *Limiter) Expire() {
	now := l.now()
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, e := range l.keys {
		e.mu.Lock()
		if e.leased && !e.safe && now.After(e.expires) {
			e.toSafeLocked(now)
		}
		e.mu.Unlock()
	}
}

// Kicked is signalled when a key that holds no lease appears.
func (l *Limiter) Kicked() <-chan struct{} { return l.kick }

// Share is one key's current capacity, for tests and metrics.
type Share struct {
	Rate   float64
	Burst  int64
	Slots  int64
	Leased bool
	Safe   bool
}

// ShareOf returns a key's current capacity.
func (l *Limiter) ShareOf(limitName, key string) (Share, bool) {
	l.mu.RLock()
	e := l.keys[entryID{limitName, key}]
	l.mu.RUnlock()
	if e == nil {
		return Share{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return Share{Rate: e.rate, Burst: e.burst, Slots: e.slots, Leased: e.leased, Safe: e.safe}, true
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return f
}

// Stage is the pipeline stage: it admits every call (not lists or
// session requests) against the rate limits before the stages after it
// run, and gives its in-flight slots back when they return.
type Stage struct {
	Limiter *Limiter
}

var _ pipeline.Stage = Stage{}

// Name implements pipeline.Stage.
func (Stage) Name() string { return "ratelimit" }

// Handle implements pipeline.Stage.
func (s Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Op != pipeline.OpCall || s.Limiter == nil {
		return next(ctx, c)
	}
	adm, note, err := s.Limiter.Admit(c)
	c.Limited = note
	if err != nil {
		return nil, err
	}
	defer adm.Done()
	return next(ctx, c)
}

// Sender sends a lease request to the control plane and returns its
// answer.
type Sender = leasereport.Sender

// Run reports demand and applies leases until ctx ends: every refresh
// interval the leader asks for, and soon after a new key appears. name is
// the data plane's.
func (l *Limiter) Run(ctx context.Context, name string, send Sender) {
	leasereport.Loop(ctx, l.kick, send, func() *configsyncv1.LeaseRequest {
		l.Expire()
		l.mu.RLock()
		configured := len(l.limits) > 0
		l.mu.RUnlock()
		if !configured {
			return nil
		}
		return &configsyncv1.LeaseRequest{Name: name, Demands: l.Demands()}
	}, l.Apply, l.now)
}

// String describes a share (for logs).
func (s Share) String() string {
	return fmt.Sprintf("%.3f/s burst %d slots %d leased=%v safe=%v", s.Rate, s.Burst, s.Slots, s.Leased, s.Safe)
}
