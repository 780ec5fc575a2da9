package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/ratelimit"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(rls ...*configv1.RateLimit) (*ratelimit.Limiter, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.New(c.now, nil)
	l.Configure(rls)
	return l, c
}

func perAgent(name string, perSecond, burst, inFlight int64, mode configv1.RateLimitMode) *configv1.RateLimit {
	return &configv1.RateLimit{Meta: &configv1.ResourceMeta{Name: name}, Key: []configv1.RateLimitKey{configv1.RateLimitKey_RATE_LIMIT_KEY_AGENT},
		Rate: perSecond, Burst: burst, MaxInFlight: inFlight, Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_SECOND, Mode: mode}
}

func call(agent, tool string) *pipeline.Call {
	return &pipeline.Call{Op: pipeline.OpCall, Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: agent}}, Target: pipeline.Target{Kind: pipeline.KindTool, Name: tool, Upstream: "up"}}
}

// admitN admits n calls at the current time and returns how many got in.
func admitN(l *ratelimit.Limiter, c *pipeline.Call, n int) (admitted int, last error) {
	for range n {
		adm, _, err := l.Admit(c)
		if err != nil {
			last = err
			continue
		}
		adm.Done()
		admitted++
	}
	return admitted, last
}

func TestSafeShareBeforeLease(t *testing.T) {
	l, c := newLimiter(perAgent("l", 10, 4, 0, 0))
	// One data plane as far as it knows: the whole limit, burst 4.
	got, err := admitN(l, call("a1", "t"), 10)
	if got != 4 {
		t.Fatalf("admitted %d at once, want the burst of 4", got)
	}
	var r *pipeline.Refusal
	if !errors.As(err, &r) || r.Reason != pipeline.ReasonRateLimited || r.RetryAfter <= 0 || r.RetryAfter > 100*time.Millisecond || r.Quota == nil || r.Quota.Policy != "l" {
		t.Fatalf("refusal %+v", err)
	}
	c.add(time.Second)
	if got, _ = admitN(l, call("a1", "t"), 10); got != 4 {
		t.Fatalf("after a second: %d, want 4 (the bucket refilled to its size)", got)
	}
	// Another key has its own bucket.
	if got, _ = admitN(l, call("a2", "t"), 10); got != 4 {
		t.Fatalf("second agent: %d, want 4", got)
	}
}

func TestLeaseThenSafeShare(t *testing.T) {
	l, c := newLimiter(perAgent("l", 30, 30, 0, 0))
	admitN(l, call("a1", "t"), 1)
	ds := l.Demands()
	if len(ds) != 1 || ds[0].GetKey() != "agent=a1" || ds[0].GetHaveRate() != 30 {
		t.Fatalf("demands %v", ds)
	}
	sent := c.now()
	l.Apply(&configsyncv1.LeaseResponse{ValidFor: durationpb.New(6 * time.Second), Dataplanes: 3,
		Leases: []*configsyncv1.Lease{{Limit: "l", Key: "agent=a1", Rate: 20, Burst: 20}}}, sent)
	if s, _ := l.ShareOf("l", "agent=a1"); !s.Leased || s.Safe || s.Rate != 20 || s.Burst != 20 {
		t.Fatalf("after the lease: %v", s)
	}
	// A new key on a fleet of 3: a third of the limit and of its burst.
	admitN(l, call("a2", "t"), 1)
	if s, _ := l.ShareOf("l", "agent=a2"); !s.Safe || s.Rate != 10 || s.Burst != 10 {
		t.Fatalf("new key: %v, want the safe share 10/s burst 10", s)
	}
	// The lease expires without a new one: min(20, 30/3) = 10.
	c.add(6*time.Second + time.Millisecond)
	admitN(l, call("a1", "t"), 1)
	if s, _ := l.ShareOf("l", "agent=a1"); !s.Safe || s.Rate != 10 {
		t.Fatalf("expired lease: %v, want the safe share 10/s", s)
	}
	// A lease smaller than the fleet's share stays the cap.
	l.Apply(&configsyncv1.LeaseResponse{ValidFor: durationpb.New(time.Second), Dataplanes: 3,
		Leases: []*configsyncv1.Lease{{Limit: "l", Key: "agent=a1", Rate: 2, Burst: 2}}}, c.now())
	c.add(2 * time.Second)
	l.Expire()
	if s, _ := l.ShareOf("l", "agent=a1"); !s.Safe || s.Rate != 2 {
		t.Fatalf("expired small lease: %v, want min(2, 10) = 2", s)
	}
}

func TestShadowRefusesNothing(t *testing.T) {
	l, _ := newLimiter(perAgent("shadow", 1, 1, 0, configv1.RateLimitMode_RATE_LIMIT_MODE_SHADOW))
	var wouldRefuse int
	for range 5 {
		adm, note, err := l.Admit(call("a1", "t"))
		if err != nil {
			t.Fatalf("shadow limit refused: %v", err)
		}
		adm.Done()
		if note != nil {
			if !note.Shadow || len(note.Limits) != 1 || note.Limits[0] != "shadow" {
				t.Fatalf("note %+v", note)
			}
			wouldRefuse++
		}
	}
	if wouldRefuse != 4 {
		t.Fatalf("would have refused %d of 5, want 4", wouldRefuse)
	}
}

func TestShadowConcurrency(t *testing.T) {
	l, _ := newLimiter(&configv1.RateLimit{Meta: &configv1.ResourceMeta{Name: "slots"}, MaxInFlight: 1, Mode: configv1.RateLimitMode_RATE_LIMIT_MODE_SHADOW})
	a1, note1, err1 := l.Admit(call("a1", "t"))
	a2, note2, err2 := l.Admit(call("a2", "t"))
	if err1 != nil || err2 != nil || note1 != nil || note2 == nil || !note2.Shadow {
		t.Fatalf("first: %v %+v; second: %v %+v; want both admitted, the second noted as a would-be refusal", err1, note1, err2, note2)
	}
	a1.Done()
	a2.Done()
	if _, note, _ := l.Admit(call("a3", "t")); note != nil {
		t.Fatalf("slot not given back: %+v", note)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	l, _ := newLimiter(&configv1.RateLimit{Meta: &configv1.ResourceMeta{Name: "slots"}, MaxInFlight: 2})
	a1, _, err1 := l.Admit(call("a1", "t"))
	a2, _, err2 := l.Admit(call("a2", "t"))
	if err1 != nil || err2 != nil {
		t.Fatalf("first two: %v %v", err1, err2)
	}
	if _, _, err := l.Admit(call("a3", "t")); err == nil {
		t.Fatal("third call in flight admitted over 2 slots")
	}
	a1.Done()
	a3, _, err := l.Admit(call("a3", "t"))
	if err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	a2.Done()
	a3.Done()
	if ds := l.Demands(); len(ds) != 1 || ds[0].GetInFlight() != 2 {
		t.Fatalf("demand %v, want peak in flight 2", ds)
	}
}

func TestEveryLimitMustAdmit(t *testing.T) {
	wide := perAgent("wide", 100, 100, 0, 0)
	narrow := &configv1.RateLimit{Meta: &configv1.ResourceMeta{Name: "narrow"}, Rate: 1, Burst: 1,
		Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_SECOND, Tools: []string{"t"}}
	l, _ := newLimiter(wide, narrow)
	if got, _ := admitN(l, call("a1", "t"), 5); got != 1 {
		t.Fatalf("admitted %d, want 1 (narrow)", got)
	}
	// The refused calls took no token from the wide limit: 99 remain
	// for other tools.
	if got, _ := admitN(l, call("a1", "other"), 200); got != 99 {
		t.Fatalf("other tool: %d, want 99", got)
	}
}

func TestStage(t *testing.T) {
	l, _ := newLimiter(perAgent("l", 1, 1, 1, 0))
	s := ratelimit.Stage{Limiter: l}
	ran := 0
	next := func(context.Context, *pipeline.Call) (*pipeline.Result, error) { ran++; return &pipeline.Result{}, nil }
	if _, err := s.Handle(context.Background(), call("a1", "t"), next); err != nil {
		t.Fatal(err)
	}
	c := call("a1", "t")
	_, err := s.Handle(context.Background(), c, next)
	if pipeline.AsRefusal(err).Reason != pipeline.ReasonRateLimited || ran != 1 || c.Limited == nil || c.Limited.Shadow {
		t.Fatalf("second call: err %v ran %d note %+v", err, ran, c.Limited)
	}
	list := &pipeline.Call{Op: pipeline.OpList}
	if _, err := s.Handle(context.Background(), list, next); err != nil || ran != 2 {
		t.Fatalf("a list is not rate limited: %v", err)
	}
}

func TestConfigureKeepsUnchangedKeys(t *testing.T) {
	l, c := newLimiter(perAgent("l", 10, 10, 0, 0))
	admitN(l, call("a1", "t"), 1)
	l.Apply(&configsyncv1.LeaseResponse{ValidFor: durationpb.New(time.Minute), Leases: []*configsyncv1.Lease{{Limit: "l", Key: "agent=a1", Rate: 7, Burst: 7}}}, c.now())
	l.Configure([]*configv1.RateLimit{perAgent("l", 10, 10, 0, 0)})
	if s, ok := l.ShareOf("l", "agent=a1"); !ok || s.Rate != 7 {
		t.Fatalf("unchanged limit lost its lease: %v %v", s, ok)
	}
	l.Configure([]*configv1.RateLimit{perAgent("l", 20, 10, 0, 0)})
	if _, ok := l.ShareOf("l", "agent=a1"); ok {
		t.Fatal("a changed limit kept the old lease")
	}
}

func TestRunReportsAndApplies(t *testing.T) {
	l := ratelimit.New(nil, nil)
	l.Configure([]*configv1.RateLimit{perAgent("l", 10, 10, 0, 0)})
	got := make(chan *configsyncv1.LeaseRequest, 16)
	send := func(_ context.Context, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error) {
		got <- req
		var leases []*configsyncv1.Lease
		for _, d := range req.GetDemands() {
			leases = append(leases, &configsyncv1.Lease{Limit: d.GetLimit(), Key: d.GetKey(), Rate: 3, Burst: 3})
		}
		return &configsyncv1.LeaseResponse{Leases: leases, ValidFor: durationpb.New(time.Minute), Refresh: durationpb.New(time.Hour), Dataplanes: 2}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, "dp1", send) }()
	defer func() { cancel(); <-done }()
	<-got                         // the first report, at once
	admitN(l, call("a1", "t"), 1) // a new key kicks a report
	deadline := time.After(10 * time.Second)
	for {
		select {
		case req := <-got:
			if len(req.GetDemands()) == 1 && req.GetName() == "dp1" {
				// Wait for the lease to land.
				for {
					if s, _ := l.ShareOf("l", "agent=a1"); s.Leased && s.Rate == 3 {
						return
					}
					select {
					case <-deadline:
						t.Fatal("lease never applied")
					case <-time.After(time.Millisecond):
					}
				}
			}
		case <-deadline:
			t.Fatal("no report for the new key")
		}
	}
}

// TestConcurrentUse admits calls from many goroutines while the limits
// are reconfigured and leases applied (run with -race), and checks that
// no more calls are ever in flight than the slots allow.
func TestConcurrentUse(t *testing.T) {
	rl := perAgent("l", 1000, 1000, 3, 0)
	l, c := newLimiter(rl)
	var mu sync.Mutex
	inFlight, peak := 0, 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				adm, _, err := l.Admit(call("a1", "t"))
				if err != nil {
					continue
				}
				mu.Lock()
				inFlight++
				peak = max(peak, inFlight)
				mu.Unlock()
				mu.Lock()
				inFlight--
				mu.Unlock()
				adm.Done()
				if g == 0 {
					l.Configure([]*configv1.RateLimit{rl})
					l.Apply(&configsyncv1.LeaseResponse{ValidFor: durationpb.New(time.Second), Dataplanes: 1,
						Leases: []*configsyncv1.Lease{{Limit: "l", Key: "agent=a1", Rate: 1000, Burst: 1000, InFlight: 3}}}, c.now())
					l.Demands()
				}
			}
		}()
	}
	wg.Wait()
	if peak > 3 {
		t.Fatalf("%d calls in flight at once, over 3 slots", peak)
	}
}
