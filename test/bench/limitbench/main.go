// Command limitbench measures fleet-wide rate limits: the data plane's
// cost per call of the rate-limit stage (p50/p99 of admitting a call and
// giving its slot back, with two limits — a rate per agent and tool and
// an in-flight limit per tool — over 1,000 active keys; goal p50 ≤ 10 µs),
// and the lease traffic of one data plane holding 1,000 active keys:
// bytes per demand report and answer, reports per second at the default
// lease duration, and the leader's time to answer one report. It also
// measures the budget reservation per call (limit.Fleet reserving a model
// call's worst case from the slices of two budgets and settling it, over
// the same keys; goal p50 ≤ 10 µs). It runs the real limiter, reserver
// and granter in one process (the traffic is the size of the messages on
// the wire, not counting HTTP/2 framing).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/lease"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/ratelimit"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

const goalP50 = 10 * time.Microsecond

type limits map[string]*configv1.RateLimit

func (l limits) RateLimit(name string) (*configv1.RateLimit, bool) {
	r, ok := l[name]
	return r, ok
}

func main() {
	out := flag.String("out", "", "also write the Markdown report to this file")
	calls := flag.Int("calls", 1_000_000, "calls measured")
	keys := flag.Int("keys", 1000, "active keys")
	flag.Parse()

	rls := []*configv1.RateLimit{
		{Meta: &configv1.ResourceMeta{Name: "per-agent-tool"}, Key: []configv1.RateLimitKey{configv1.RateLimitKey_RATE_LIMIT_KEY_AGENT, configv1.RateLimitKey_RATE_LIMIT_KEY_TOOL},
			Rate: 1_000_000, Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_SECOND, Burst: 1_000_000},
		{Meta: &configv1.ResourceMeta{Name: "tool-slots"}, Key: []configv1.RateLimitKey{configv1.RateLimitKey_RATE_LIMIT_KEY_TOOL}, MaxInFlight: 1_000_000},
	}
	l := ratelimit.New(nil, nil)
	l.Configure(rls)
	cs := make([]*pipeline.Call, *keys)
	for i := range cs {
		cs[i] = &pipeline.Call{Op: pipeline.OpCall, Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: fmt.Sprintf("agent-%04d", i)}},
			Target: pipeline.Target{Kind: pipeline.KindTool, Name: fmt.Sprintf("up__tool_%d", i%50), Upstream: "up"}}
	}
	for _, c := range cs { // create every key
		if adm, _, err := l.Admit(c); err == nil {
			adm.Done()
		}
	}
	lat := make([]time.Duration, *calls)
	runtime.GC()
	for i := range *calls {
		c := cs[i%len(cs)]
		t0 := time.Now()
		adm, _, err := l.Admit(c)
		if err == nil {
			adm.Done()
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]

	// Lease traffic: one demand report of every key, its answer, and the
	// leader's time to answer it (the data plane reports every third of
	// a lease duration).
	// The granter's clock starts a lease duration back, so its quiet
	// period is over.
	skew := lease.DefaultDuration + time.Second
	now := func() time.Time { return time.Now().Add(skew) }
	g := lease.New(lease.Config{Limits: limits{rls[0].GetMeta().GetName(): rls[0], rls[1].GetMeta().GetName(): rls[1]}, Now: now})
	skew = 0
	g.Begin()
	skew = lease.DefaultDuration + time.Second
	req := &configsyncv1.LeaseRequest{Name: "dp1", Demands: l.Demands()}
	const rounds = 200
	var grant time.Duration
	var respBytes int
	for range rounds {
		t0 := time.Now()
		resp, err := g.Grant("dp1", req)
		grant += time.Since(t0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "grant:", err)
			os.Exit(1)
		}
		respBytes = proto.Size(resp)
	}
	g.End()
	reqBytes := proto.Size(req)

	br, err := measureBudgets(*calls, *keys)
	if err != nil {
		fmt.Fprintln(os.Stderr, "budgets:", err)
		os.Exit(1)
	}
	perSecond := 1 / (lease.DefaultDuration / 3).Seconds()

	var b strings.Builder
	fmt.Fprintf(&b, "# Rate limits: limit stage cost and lease traffic\n\n")
	fmt.Fprintf(&b, "GOMAXPROCS %d, %d calls over %d active keys, two limits per call (a rate per agent+tool, in-flight slots per tool); budgets: two per call (cost and tokens per agent per month, calls per team per day), every key holding a valid slice.\n\n", runtime.GOMAXPROCS(0), *calls, *keys)
	verdict := "PASS"
	if p50 > goalP50 {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "| measure | value | goal |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| rate-limit stage per call, p50 | %s | ≤ %s (%s) |\n", p50, goalP50, verdict)
	fmt.Fprintf(&b, "| rate-limit stage per call, p99 | %s | |\n", p99)
	bverdict := "PASS"
	if br.p50 > goalP50 {
		bverdict = "FAIL"
	}
	fmt.Fprintf(&b, "| budget reservation per call (reserve + settle from slices, %d budgets), p50 | %s | ≤ %s (%s) |\n", br.budgets, br.p50, goalP50, bverdict)
	fmt.Fprintf(&b, "| budget reservation per call, p99 | %s | |\n", br.p99)
	fmt.Fprintf(&b, "| demand entries per report | %d (%d keys × limits that apply) | |\n", len(req.Demands), *keys)
	fmt.Fprintf(&b, "| demand report | %d bytes | |\n", reqBytes)
	fmt.Fprintf(&b, "| lease answer | %d bytes | |\n", respBytes)
	fmt.Fprintf(&b, "| reports per data plane per second (lease %s, refresh every third) | %.2f | |\n", lease.DefaultDuration, perSecond)
	fmt.Fprintf(&b, "| lease traffic per data plane | %.1f KiB/s up, %.1f KiB/s down | |\n", float64(reqBytes)*perSecond/1024, float64(respBytes)*perSecond/1024)
	fmt.Fprintf(&b, "| leader's time to answer one report | %s | |\n", (grant / rounds).Round(time.Microsecond))
	fmt.Print(b.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(b.String()), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
