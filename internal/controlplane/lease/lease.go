// Package lease is the control-plane leader's grant of rate-limit
// capacity to data planes (the approach of YouTube's Doorman): each data
// plane reports, per rate limit and key, the calls per second and the
// calls in flight it saw lately; the leader hands it a share of the
// limit's rate and in-flight slots in proportion to that demand, valid
// for one lease duration. Data planes enforce their shares locally.
//
// Invariants:
//   - The shares the leader counts as outstanding for a key never sum
//     above the limit: a grant is cut to what the others leave. A data
//     plane's outstanding share is the larger of what it said it enforces
//     when it last asked and what it was granted then (the reply may be
//     lost), until it asks again or that lease expires.
//   - A new leader grants nothing for one lease duration after it takes
//     over (its quiet period), so no lease of the previous leader is still
//     valid when it grants; during it, it learns from the reports what
//     every data plane enforces.
//
// The table lives in the leader's memory only; it is rebuilt from the
// data planes' reports after a failover, which is what the quiet period
// waits for.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Defaults.
const (
	// DefaultDuration is how long a lease stays valid.
	DefaultDuration = 6 * time.Second
	// MaxDemands bounds the demands of one request.
	MaxDemands = 10_000
	// MaxKeyBytes bounds a demand's key.
	MaxKeyBytes = 512
	// maxKeys bounds the keys the leader tracks; demands for new keys
	// beyond it get no lease (their data planes keep their safe share).
	maxKeys = 1_000_000
)

// ErrNotLeader is returned by Grant on a node that does not lead.
var ErrNotLeader = errors.New("this node does not grant leases: it is not the leader")

// Limits looks rate limits up in the leader's applied state. It must be
// safe for concurrent use.
type Limits interface {
	RateLimit(name string) (*configv1.RateLimit, bool)
}

// StateLimits reads rate limits from a node's applied state.
type StateLimits func() *state.State

// RateLimit implements Limits.
func (f StateLimits) RateLimit(name string) (*configv1.RateLimit, bool) {
	r, ok := f().Get(resource.RateLimit, name)
	return r.GetRateLimit(), ok
}

// Config configures a Granter.
type Config struct {
	Limits Limits
	// Budgets, when set, makes the granter lease budget slices too.
	Budgets Budgets
	// Duration is how long a lease stays valid (default DefaultDuration);
	// data planes refresh every third of it.
	Duration time.Duration
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Granter grants leases while this node leads (between Run's start and
// end). Safe for concurrent use.
type Granter struct {
	limits   Limits
	budgets  Budgets
	duration time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu         sync.Mutex
	leading    bool
	quietUntil time.Time
	keys       map[keyID]*keyState
	slices     map[sliceKeyID]*sliceKey
	// seen is when each data plane last asked.
	seen      map[string]time.Time
	lastSweep time.Time
}

type keyID struct{ limit, key string }

// keyState is every data plane's share of one key.
type keyState struct {
	shares map[string]*share
}

// share is one data plane's demand and outstanding capacity for a key.
type share struct {
	want         float64
	wantInFlight int64
	rate         float64
	inFlight     int64
	expires      time.Time
}

// New returns a Granter that does not lead yet.
func New(cfg Config) *Granter {
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Granter{limits: cfg.Limits, budgets: cfg.Budgets, duration: cfg.Duration, now: cfg.Now, log: cfg.Logger.With("component", "lease")}
}

// Run is the granter's singleton job: it grants from when this node
// starts leading (after the quiet period) until ctx ends.
func (g *Granter) Run(ctx context.Context) {
	g.Begin()
	g.log.InfoContext(ctx, "leading: granting rate-limit leases after one lease duration", "quiet", g.duration)
	<-ctx.Done()
	g.End()
}

// Begin starts a leadership term: the table starts empty and nothing is
// granted for one lease duration.
func (g *Granter) Begin() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leading = true
	g.quietUntil = g.now().Add(g.duration)
	g.keys = map[keyID]*keyState{}
	g.slices = map[sliceKeyID]*sliceKey{}
	g.seen = map[string]time.Time{}
}

// End ends a leadership term: Grant refuses until the next Begin.
func (g *Granter) End() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leading, g.keys, g.slices, g.seen = false, nil, nil, nil
}

// Leading reports whether this node grants leases now.
func (g *Granter) Leading() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leading
}

// Capacity is a rate limit's fleet-wide capacity: calls per second, the
// bucket size and in-flight slots (0: none of that kind).
type Capacity struct {
	Rate     float64
	Burst    int64
	InFlight int64
}

// CapacityOf is r's fleet-wide capacity.
func CapacityOf(r *configv1.RateLimit) Capacity {
	c := Capacity{InFlight: r.GetMaxInFlight()}
	if r.GetRate() > 0 {
		per := time.Second
		switch r.GetPeriod() {
		case configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE:
			per = time.Minute
		case configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_HOUR:
			per = time.Hour
		}
		c.Rate = float64(r.GetRate()) / per.Seconds()
		c.Burst = r.GetBurst()
		if c.Burst == 0 {
			c.Burst = min(r.GetRate(), 1_000_000)
		}
	}
	return c
}

// Grant answers one data plane's demand report (name is the data plane,
// already authenticated). It returns ErrNotLeader when this node does not
// lead.
func (g *Granter) Grant(name string, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.leading {
		return nil, ErrNotLeader
	}
	now := g.now()
	g.seen[name] = now
	dataplanes := g.countDataplanesLocked(now)
	resp := &configsyncv1.LeaseResponse{
		ValidFor: durationpb.New(g.duration),
		Refresh:  durationpb.New(g.duration / 3),
		Quiet:    now.Before(g.quietUntil),
	}
	if !resp.Quiet {
		// A new leader knows the fleet's size only once every data plane
		// has reported, which its quiet period waits for: until then data
		// planes keep the size they last heard, rather than a smaller one
		// that would raise their safe shares.
		resp.Dataplanes = uint32(dataplanes) //nolint:gosec // bounded by the data planes that report
	}
	asked := make(map[keyID]bool, len(req.GetDemands()))
	for _, d := range req.GetDemands() {
		id := keyID{d.GetLimit(), d.GetKey()}
		if asked[id] { // a key once per report
			continue
		}
		asked[id] = true
		rl, ok := g.limits.RateLimit(d.GetLimit())
		if !ok {
			continue
		}
		ks := g.keys[id]
		if ks == nil {
			if len(g.keys) >= maxKeys {
				continue
			}
			ks = &keyState{shares: map[string]*share{}}
			g.keys[id] = ks
		}
		ks.expire(now)
		sh := ks.shares[name]
		if sh == nil {
			sh = &share{}
			ks.shares[name] = sh
		}
		// What the data plane enforces now is outstanding until it says
		// otherwise (the reply to its last request may have been lost,
		// or it was granted by the previous leader).
		sh.want, sh.wantInFlight = finite(d.GetRate()), max(d.GetInFlight(), 0)
		sh.rate, sh.inFlight = finite(d.GetHaveRate()), max(d.GetHaveInFlight(), 0)
		sh.expires = now.Add(g.duration)
		if resp.Quiet {
			continue
		}
		c := CapacityOf(rl)
		l := &configsyncv1.Lease{Limit: id.limit, Key: id.key}
		if c.Rate > 0 {
			l.Rate = ks.grantRate(name, c.Rate)
			// Until the data plane reports again it may still enforce
			// what it had (if this reply is lost), or this grant.
			sh.rate = max(sh.rate, l.Rate)
			l.Burst = burstShare(c, l.Rate)
		}
		if c.InFlight > 0 {
			l.InFlight = ks.grantInFlight(name, c.InFlight)
			sh.inFlight = max(sh.inFlight, l.InFlight)
		}
		resp.Leases = append(resp.Leases, l)
	}
	g.grantBudgetsLocked(name, req, resp, now)
	g.sweepLocked(now)
	return resp, nil
}

// CheckRequest checks a lease request against the limits on what a data
// plane may send.
func CheckRequest(req *configsyncv1.LeaseRequest) error {
	if len(req.GetDemands()) > MaxDemands {
		return fmt.Errorf("a lease request carries at most %d demands", MaxDemands)
	}
	for i, d := range req.GetDemands() {
		if len(d.GetKey()) > MaxKeyBytes || len(d.GetLimit()) > limits.Name {
			return fmt.Errorf("demand %d: a key is at most %d bytes and a limit's name at most %d", i, MaxKeyBytes, limits.Name)
		}
	}
	return checkBudgetDemands(req)
}

// burstShare is a data plane's part of the limit's burst: the same
// fraction as its rate, at least 1 when it may admit anything.
func burstShare(c Capacity, rate float64) int64 {
	if rate <= 0 || c.Rate <= 0 {
		return 0
	}
	return max(int64(math.Floor(float64(c.Burst)*rate/c.Rate)), 1)
}

// expire drops the shares whose lease ran out.
func (ks *keyState) expire(now time.Time) {
	for n, sh := range ks.shares {
		if now.After(sh.expires) {
			delete(ks.shares, n)
		}
	}
}

// grantRate is name's new rate: its share of capacity in proportion to
// demand (with spare capacity split evenly when demand is below it), cut
// to what the other data planes' outstanding shares leave.
func (ks *keyState) grantRate(name string, capacity float64) float64 {
	var wants, others float64
	for n, sh := range ks.shares {
		wants += sh.want
		if n != name {
			others += sh.rate
		}
	}
	mine := ks.shares[name].want
	var target float64
	if wants <= capacity {
		target = mine + (capacity-wants)/float64(len(ks.shares))
	} else {
		target = capacity * mine / wants
	}
	return max(min(target, capacity-others), 0)
}

// grantInFlight is grantRate for in-flight slots, in whole slots.
func (ks *keyState) grantInFlight(name string, capacity int64) int64 {
	var wants, others int64
	for n, sh := range ks.shares {
		wants += sh.wantInFlight
		if n != name {
			others += sh.inFlight
		}
	}
	mine := ks.shares[name].wantInFlight
	var target int64
	if wants <= capacity {
		target = mine + (capacity-wants)/int64(len(ks.shares))
	} else {
		target = int64(float64(capacity) * float64(mine) / float64(wants))
	}
	return max(min(target, capacity-others), 0)
}

// countDataplanesLocked counts the data planes that asked within three
// lease durations.
func (g *Granter) countDataplanesLocked(now time.Time) int {
	n := 0
	for name, t := range g.seen {
		if now.Sub(t) > 3*g.duration {
			delete(g.seen, name)
			continue
		}
		n++
	}
	return max(n, 1)
}

// sweepLocked drops keys nobody holds a share of.
func (g *Granter) sweepLocked(now time.Time) {
	if now.Sub(g.lastSweep) < g.duration {
		return
	}
	g.lastSweep = now
	for id, ks := range g.keys {
		ks.expire(now)
		if len(ks.shares) == 0 {
			delete(g.keys, id)
		}
	}
	for id, sk := range g.slices {
		sk.expire(now)
		if len(sk.shares) == 0 {
			delete(g.slices, id)
		}
	}
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return min(f, 1e12)
}
