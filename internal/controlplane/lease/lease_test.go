package lease_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/lease"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

type limits map[string]*configv1.RateLimit

func (l limits) RateLimit(name string) (*configv1.RateLimit, bool) {
	r, ok := l[name]
	return r, ok
}

// clock is a settable test clock.
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

const dur = 6 * time.Second

// leading returns a granter that leads (quiet period over) with the
// given limits.
func leading(t *testing.T, l limits) (*lease.Granter, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	g := lease.New(lease.Config{Limits: l, Duration: dur, Now: c.now})
	g.Begin()
	t.Cleanup(g.End)
	c.add(dur + time.Millisecond)
	return g, c
}

func perSecond(name string, rate, burst, inFlight int64) *configv1.RateLimit {
	return &configv1.RateLimit{Meta: &configv1.ResourceMeta{Name: name}, Rate: rate, Burst: burst, MaxInFlight: inFlight,
		Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_SECOND}
}

func ask(t *testing.T, g *lease.Granter, dp string, ds ...*configsyncv1.Demand) *configsyncv1.LeaseResponse {
	t.Helper()
	resp, err := g.Grant(dp, &configsyncv1.LeaseRequest{Name: dp, Demands: ds})
	if err != nil {
		t.Fatalf("grant %s: %v", dp, err)
	}
	return resp
}

func leaseOf(resp *configsyncv1.LeaseResponse) *configsyncv1.Lease {
	if len(resp.GetLeases()) != 1 {
		return nil
	}
	return resp.GetLeases()[0]
}

func TestProportionalShares(t *testing.T) {
	g, _ := leading(t, limits{"l": perSecond("l", 100, 20, 10)})
	// Demand 80/15/5 of a limit of 100/s, each asking twice its share.
	wants := map[string]float64{"a": 160, "b": 30, "c": 10}
	have := map[string]*configsyncv1.Lease{}
	for range 3 { // converge: each round replaces the previous grants
		for _, dp := range []string{"a", "b", "c"} {
			d := &configsyncv1.Demand{Limit: "l", Rate: wants[dp], InFlight: 4}
			if h := have[dp]; h != nil {
				d.HaveRate, d.HaveInFlight = h.GetRate(), h.GetInFlight()
			}
			have[dp] = leaseOf(ask(t, g, dp, d))
		}
	}
	var sum float64
	var sumInFlight, sumBurst int64
	for dp, l := range have {
		want := 100 * wants[dp] / 200
		if math.Abs(l.GetRate()-want) > 0.01 {
			t.Errorf("%s: rate %.2f, want %.2f (proportional to demand)", dp, l.GetRate(), want)
		}
		sum += l.GetRate()
		sumInFlight += l.GetInFlight()
		sumBurst += l.GetBurst()
	}
	if sum > 100+1e-9 || sumInFlight > 10 || sumBurst > 20+3 {
		t.Errorf("sum of leases rate %.3f in flight %d burst %d, want ≤ 100, ≤ 10, ≤ 23", sum, sumInFlight, sumBurst)
	}
	if sum < 99.99 {
		t.Errorf("sum of rates %.2f: capacity left unused while demand exceeds it", sum)
	}
}

func TestSpareCapacitySplitEvenly(t *testing.T) {
	g, _ := leading(t, limits{"l": perSecond("l", 100, 0, 0)})
	ask(t, g, "a", &configsyncv1.Demand{Limit: "l", Rate: 10})
	l := leaseOf(ask(t, g, "b", &configsyncv1.Demand{Limit: "l", Rate: 30}))
	// Demand 40 of 100: b gets its 30 and half the spare 60, but a's
	// first lease (10 + 90 spare) is still outstanding, so b gets what a
	// leaves.
	if l.GetRate() != 0 {
		t.Fatalf("b got %.1f while a holds the whole limit", l.GetRate())
	}
	la := leaseOf(ask(t, g, "a", &configsyncv1.Demand{Limit: "l", Rate: 10, HaveRate: 100}))
	if la.GetRate() != 40 {
		t.Fatalf("a's refresh: %.1f, want 10 + 60/2 = 40", la.GetRate())
	}
	// a may still enforce 100 until it asks again with its new lease.
	if l = leaseOf(ask(t, g, "b", &configsyncv1.Demand{Limit: "l", Rate: 30})); l.GetRate() != 0 {
		t.Fatalf("b got %.1f before a confirmed its smaller lease", l.GetRate())
	}
	ask(t, g, "a", &configsyncv1.Demand{Limit: "l", Rate: 10, HaveRate: 40})
	if l = leaseOf(ask(t, g, "b", &configsyncv1.Demand{Limit: "l", Rate: 30})); l.GetRate() != 60 {
		t.Fatalf("b's refresh: %.1f, want 30 + 60/2 = 60", l.GetRate())
	}
}

// TestNeverAboveLimit drives random demands, lost replies and expiries
// and checks after every grant that what the data planes may enforce —
// each one's newest lease it received, until it expires — sums to at
// most the limit.
func TestNeverAboveLimit(t *testing.T) {
	const capacity, slots = 50.0, int64(7)
	g, c := leading(t, limits{"l": perSecond("l", 50, 10, slots)})
	rng := rand.New(rand.NewPCG(1, 2))
	type held struct {
		rate     float64
		inFlight int64
		expires  time.Time
	}
	dps := []string{"a", "b", "c", "d", "e"}
	holding := map[string]held{}
	for i := range 5000 {
		dp := dps[rng.IntN(len(dps))]
		now := c.now()
		h := holding[dp]
		if now.After(h.expires) {
			h = held{}
		}
		l := leaseOf(ask(t, g, dp, &configsyncv1.Demand{Limit: "l", Rate: rng.Float64() * 100, InFlight: rng.Int64N(10), HaveRate: h.rate, HaveInFlight: h.inFlight}))
		if rng.IntN(10) > 0 { // one reply in ten is lost
			holding[dp] = held{rate: l.GetRate(), inFlight: l.GetInFlight(), expires: now.Add(dur)}
		}
		c.add(time.Duration(rng.IntN(1500)) * time.Millisecond)
		var sum float64
		var sumInFlight int64
		for _, h := range holding {
			if !c.now().After(h.expires) {
				sum += h.rate
				sumInFlight += h.inFlight
			}
		}
		if sum > capacity+1e-6 || sumInFlight > slots {
			t.Fatalf("step %d: data planes hold %.3f/s and %d slots, above the limit %.0f/s, %d", i, sum, sumInFlight, capacity, slots)
		}
	}
}

func TestQuietPeriodAndLeadership(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	g := lease.New(lease.Config{Limits: limits{"l": perSecond("l", 10, 0, 0)}, Duration: dur, Now: c.now})
	if _, err := g.Grant("a", &configsyncv1.LeaseRequest{}); !errors.Is(err, lease.ErrNotLeader) {
		t.Fatalf("before leading: %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !g.Leading() {
		if time.Now().After(deadline) {
			t.Fatal("granter never started leading")
		}
		runtime.Gosched()
	}
	// During the quiet period: nothing granted, what a data plane says it
	// enforces is recorded as outstanding.
	resp := ask(t, g, "a", &configsyncv1.Demand{Limit: "l", Rate: 5, HaveRate: 7})
	if !resp.GetQuiet() || len(resp.GetLeases()) != 0 {
		t.Fatalf("quiet period: %v", resp)
	}
	c.add(dur - time.Second)
	ask(t, g, "a", &configsyncv1.Demand{Limit: "l", Rate: 5, HaveRate: 7})
	c.add(2 * time.Second)
	// b asks first after the quiet period: a's reported 7/s is still
	// outstanding.
	if l := leaseOf(ask(t, g, "b", &configsyncv1.Demand{Limit: "l", Rate: 5})); l.GetRate() > 3+1e-9 {
		t.Fatalf("b got %.2f/s while a enforces 7 of 10", l.GetRate())
	}
	cancel()
	<-done
	if _, err := g.Grant("a", &configsyncv1.LeaseRequest{}); !errors.Is(err, lease.ErrNotLeader) {
		t.Fatalf("after leading: %v, want ErrNotLeader", err)
	}
}

func TestUnknownLimitAndCounts(t *testing.T) {
	g, _ := leading(t, limits{"l": perSecond("l", 10, 0, 0)})
	resp := ask(t, g, "a", &configsyncv1.Demand{Limit: "gone", Rate: 5})
	if len(resp.GetLeases()) != 0 {
		t.Fatalf("lease for an unknown limit: %v", resp)
	}
	for i := range 4 {
		ask(t, g, fmt.Sprint("dp", i))
	}
	if n := ask(t, g, "a").GetDataplanes(); n != 5 {
		t.Fatalf("dataplanes %d, want 5", n)
	}
}

func TestCapacityOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *configv1.RateLimit
		want lease.Capacity
	}{
		{"per minute, default burst", &configv1.RateLimit{Rate: 120, Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE}, lease.Capacity{Rate: 2, Burst: 120}},
		{"per hour with burst", &configv1.RateLimit{Rate: 3600, Burst: 5, Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_HOUR}, lease.Capacity{Rate: 1, Burst: 5}},
		{"concurrency only", &configv1.RateLimit{MaxInFlight: 3}, lease.Capacity{InFlight: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lease.CapacityOf(tc.r); got != tc.want {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzGrant feeds arbitrary demand reports (bytes from a data plane) to
// the granter: it must never panic, and the leases it hands out for a key
// never sum above the limit.
func FuzzGrant(f *testing.F) {
	seed, _ := proto.Marshal(&configsyncv1.LeaseRequest{Name: "a", Demands: []*configsyncv1.Demand{{Limit: "l", Key: "k", Rate: 5, InFlight: 2, HaveRate: 1}}})
	f.Add(seed, uint8(0))
	f.Add([]byte{0x12, 0x09, 0x0a, 0x01, 'l', 0x19, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, uint8(1)) // rate NaN
	f.Fuzz(func(t *testing.T, data []byte, who uint8) {
		var req configsyncv1.LeaseRequest
		if proto.Unmarshal(data, &req) != nil || lease.CheckRequest(&req) != nil {
			return
		}
		g, _ := leading(t, limits{"l": perSecond("l", 10, 5, 3), "k": perSecond("k", 1, 0, 0)})
		sums := map[string]float64{}
		slots := map[string]int64{}
		for i := range 3 {
			dp := fmt.Sprint("dp", (int(who)+i)%3)
			resp, err := g.Grant(dp, &req)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, l := range resp.GetLeases() {
				id := l.GetLimit() + "\x00" + l.GetKey()
				if seen[id] {
					t.Fatalf("two leases of %q in one answer", id)
				}
				seen[id] = true
				if l.GetRate() < 0 || math.IsNaN(l.GetRate()) || l.GetInFlight() < 0 {
					t.Fatalf("lease %v", l)
				}
				sums[id] += l.GetRate()
				slots[id] += l.GetInFlight()
			}
		}
		for id, s := range sums {
			if s > 10+1e-6 || slots[id] > 3 {
				t.Fatalf("key %q: %.3f/s and %d slots granted in all", id, s, slots[id])
			}
		}
	})
}
