package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// stageMetric is the data plane's histogram of each pipeline stage's own
// time per call, in seconds, labelled stage="…".
const stageMetric = "portcullis_dataplane_stage_seconds"

// stageOrder is the order of the data plane's stages in its pipeline
// (forward, the upstream call, is innermost); stages not listed here are
// reported after these, by name.
var stageOrder = []string{"metrics", "audit", "authenticate", "gate", "rollout", "authorize", "validate", "forward"}

// stageTotal is a stage's cumulative own time and number of observations.
type stageTotal struct {
	sum   float64 // seconds
	count float64
}

// stageTimes is stageTotal by stage name.
type stageTimes map[string]stageTotal

// parseStageTimes picks the stage histogram's _sum and _count series out of
// a scrape of /metrics, as parsed by harness.Dataplane.Metrics: series
// (name and labels as exposed) to value.
func parseStageTimes(series map[string]float64) stageTimes {
	out := stageTimes{}
	for key, v := range series {
		name, labels, ok := strings.Cut(key, "{")
		if !ok {
			continue
		}
		stage, ok := labelValue(strings.TrimSuffix(labels, "}"), "stage")
		if !ok {
			continue
		}
		t := out[stage]
		switch name {
		case stageMetric + "_sum":
			t.sum = v
		case stageMetric + "_count":
			t.count = v
		default:
			continue
		}
		out[stage] = t
	}
	return out
}

// labelValue finds name="value" in a Prometheus label list. Label values
// here are stage names, which hold neither commas nor quotes, so splitting
// on commas is enough.
func labelValue(labels, name string) (string, bool) {
	for l := range strings.SplitSeq(labels, ",") {
		k, v, ok := strings.Cut(l, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// since is what happened between the scrapes before and t: the
// differences per stage, without stages that saw no call in between.
func (t stageTimes) since(before stageTimes) stageTimes {
	out := stageTimes{}
	for stage, after := range t {
		b := before[stage]
		if d := (stageTotal{sum: after.sum - b.sum, count: after.count - b.count}); d.count > 0 {
			out[stage] = d
		}
	}
	return out
}

// mean is the mean own time per observation.
func (s stageTotal) mean() time.Duration {
	if s.count <= 0 {
		return 0
	}
	return time.Duration(math.Round(s.sum / s.count * float64(time.Second)))
}

// names lists the stages in pipeline order.
func (t stageTimes) names() []string {
	var names []string
	for stage := range t {
		names = append(names, stage)
	}
	rank := func(s string) int {
		if i := slices.Index(stageOrder, s); i >= 0 {
			return i
		}
		return len(stageOrder)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
	return names
}

// stageBreakdown is a data plane's mean added latency split into its
// stages' own times.
type stageBreakdown struct {
	added  time.Duration // mean data-plane latency − mean direct latency
	direct time.Duration // mean direct latency
	stages stageTimes    // own time per stage over the same window
}

// breakdown splits the mean latency the data plane added over the direct
// path into its stages' own times. The forward stage (the upstream call)
// includes the upstream's own time, which the direct path pays too, so it
// is shown but not counted as added; other is what no other stage accounts
// for: the data plane's HTTP server, JSON-RPC decoding and encoding, MCP
// sessions, its upstream client's cost beyond the upstream's own time
// (/metrics cannot separate that from forward), and scheduling.
func breakdown(dp, direct runResult) stageBreakdown {
	return stageBreakdown{added: dp.mean() - direct.mean(), direct: direct.mean(), stages: dp.stages}
}

// other is the part of the added latency that no stage but forward
// accounts for.
func (b stageBreakdown) other() time.Duration {
	rest := b.added
	for stage, t := range b.stages {
		if stage != "forward" {
			rest -= t.mean()
		}
	}
	return rest
}

// share is d as a percentage of the added latency.
func (b stageBreakdown) share(d time.Duration) string {
	switch pct := 100 * float64(d) / float64(b.added); {
	case b.added <= 0:
		return "n/a"
	case pct < 0:
		return fmt.Sprintf("−%.1f%%", -pct)
	default:
		return fmt.Sprintf("%.1f%%", pct)
	}
}

// stageLabels describe the stages in the report.
var stageLabels = map[string]string{
	"metrics":      "metrics (call counters)",
	"audit":        "audit (record the call; with durable audit, wait for its fsync)",
	"authenticate": "authenticate (API key)",
	"gate":         "gate (serving mode, tool lookup, read-only/mutating class)",
	"rollout":      "rollout (shadow: the candidate's decision beside the active one, compared and counted)",
	"authorize":    "authorize (Cedar)",
	"validate":     "validate (arguments against the pinned schema)",
}

// renderBreakdown writes one data plane's stage table; calls is the
// number of calls its latency figures come from.
func renderBreakdown(w *strings.Builder, name string, calls int, b stageBreakdown) {
	fmt.Fprintf(w, "\n#### %s: where the added latency goes\n\n", name)
	fmt.Fprintf(w, "Mean latency %s against %s direct: %s added. Each stage's own time per call (excluding the stages after it), "+
		"from the deltas of `%s` `_sum` and `_count` scraped from the data plane's /metrics at the start and end of the measured window:\n\n",
		ms(b.added+b.direct), ms(b.direct), signed(b.added), stageMetric)
	fmt.Fprintf(w, "| stage | calls | mean own time | share of added latency |\n|---|---:|---:|---:|\n")
	for _, stage := range b.stages.names() {
		if stage == "forward" {
			continue
		}
		t := b.stages[stage]
		label := stageLabels[stage]
		if label == "" {
			label = stage
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s |\n", label, t.count, us(t.mean()), b.share(t.mean()))
	}
	if f, ok := b.stages["forward"]; ok {
		fmt.Fprintf(w, "| forward (the upstream call; includes the upstream's own time, which the direct path pays too, so not counted as added) | %.0f | %s | — |\n", f.count, us(f.mean()))
	}
	fmt.Fprintf(w, "| other: the rest of the added latency (HTTP server, JSON-RPC, MCP sessions, the upstream client beyond the upstream's own time, scheduling) | | %s | %s |\n", signedUs(b.other()), b.share(b.other()))
	fmt.Fprintf(w, "| **added (data plane mean − direct mean)** | %d | %s | 100%% |\n", calls, signedUs(b.added))
	if a, ok := b.stages["authorize"]; ok {
		fmt.Fprintf(w, "\nauthorization: %s mean, %s of the data plane's added latency.\n", us(a.mean()), b.share(a.mean()))
	}
}

// us formats a duration in whole microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

func signedUs(d time.Duration) string {
	if d >= 0 {
		return "+" + us(d)
	}
	return "−" + us(-d)
}
