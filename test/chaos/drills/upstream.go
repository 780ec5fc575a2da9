package drills

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Per-call timeout of the hung upstream, and the slack its failures may
// take beyond it on a loaded machine.
const (
	hangTimeout = 2 * time.Second
	hangSlack   = time.Second
	// fastP99 bounds the p99 of the healthy upstream's calls while the
	// other one hangs.
	fastP99 = time.Second
)

// UpstreamHang runs two upstreams behind one data plane: "fast", and
// "slow", which delays every tool call by an hour and has a per-call
// timeout of hangTimeout. Calls to slow must all fail within the timeout
// (plus slack); calls to fast, made all along, must not fail and their p99
// must stay under fastP99. The two latency bounds apply at sizes with
// LatencyBounds; the hour-long delay still makes a call that the timeout
// did not end an unanswered one, which fails every size.
func UpstreamHang(t testing.TB, s Size, v *Verdict) {
	g := startGateway(t, gatewaySpec{nodes: 1, dataplanes: []string{"dp1"}, upstreams: []upstreamSpec{
		{name: "fast"},
		{name: "slow", args: []string{"--latency", "1h"}, add: []string{"--timeout-per-call", hangTimeout.String()}},
	}})
	fast := readLoad(t, g, "fast", g.dps, 2, readEvery)
	soak(t, s.Phase/2, "fast upstream alone")
	baseline := summarize(fast.Stop())

	fast = readLoad(t, g, "fast", g.dps, 2, readEvery)
	slow := startLoad(t, loadSpec{
		workers: 3, every: 100 * time.Millisecond, dps: g.dps, keys: g.agentKeys(), action: action("slow", readTool),
		args: func(w, i int) map[string]any { return map[string]any{"city": fmt.Sprintf("s%d-%d", w, i)} },
		validate: func(c harness.ToolCall, _ map[string]any) error {
			if c.Err() == nil {
				return fmt.Errorf("served in %s", c.Elapsed)
			}
			return nil
		},
	})
	soak(t, 2*s.Phase, "slow upstream hanging")
	slowCalls := slow.Stop()
	during := summarize(fast.Stop())

	var served, unanswered, timedOut int
	var slowest time.Duration
	reasons := map[string]int{}
	for _, c := range slowCalls {
		slowest = max(slowest, c.res.Elapsed)
		switch {
		case !c.answered:
			unanswered++
		case c.err != nil:
			served++
		default:
			reasons[c.res.Reason]++
			if c.res.Elapsed >= hangTimeout/2 {
				timedOut++
			}
		}
	}
	var rs []string
	for _, r := range slices.Sorted(maps.Keys(reasons)) {
		rs = append(rs, fmt.Sprintf("%s×%d", r, reasons[r]))
	}
	v.Figure("slow upstream (--timeout-per-call %s): %d calls, %d failed after waiting (timeout), %d refused at once (breaker), slowest %s (bound %s), reasons %s",
		hangTimeout, len(slowCalls), timedOut, len(slowCalls)-timedOut-served-unanswered, ms(slowest), hangTimeout+hangSlack, strings.Join(rs, " "))
	v.Check(t, len(slowCalls) >= 3 && timedOut >= 1, "the slow upstream's load made %d calls, %d of them timed out", len(slowCalls), timedOut)
	v.Check(t, served == 0 && unanswered == 0, "of the slow upstream's calls %d were served and %d got no answer; want every one refused", served, unanswered)
	if s.LatencyBounds {
		v.Check(t, slowest <= hangTimeout+hangSlack, "a call to the slow upstream took %s, beyond its timeout %s + %s", ms(slowest), hangTimeout, hangSlack)
	}
	v.Figure("fast upstream alone: %s; while the other hung: %s (p99 bound %s)", baseline, during, fastP99)
	v.Check(t, baseline.failed == 0 && during.failed == 0, "%d + %d calls to the fast upstream failed, first: %v %v", baseline.failed, during.failed, baseline.firstFailures, during.firstFailures)
	v.Check(t, during.n >= 10, "only %d calls to the fast upstream while the other hung", during.n)
	if s.LatencyBounds {
		v.Check(t, during.p99 <= fastP99, "the fast upstream's p99 was %s while the other hung, bound %s", ms(during.p99), fastP99)
	}
}
