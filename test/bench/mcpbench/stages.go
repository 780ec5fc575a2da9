package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// stageMetric is the data plane's histogram of each pipeline stage's own
// time per call, in seconds, labelled stage="…".
const stageMetric = "portcullis_dataplane_stage_seconds"

// stageOrder is the order of the data plane's stages in its pipeline
// (forward, the upstream call, is innermost); stages not listed here are
// reported after these, by name.
var stageOrder = []string{"metrics", "audit", "authenticate", "gate", "inspect", "rollout", "authorize", "validate", "forward"}

// stageTotal is a stage's cumulative own time, number of observations and
// histogram buckets (cumulative counts by upper bound in seconds).
type stageTotal struct {
	sum     float64 // seconds
	count   float64
	buckets map[float64]float64
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
		case stageMetric + "_bucket":
			le, ok := labelValue(strings.TrimSuffix(labels, "}"), "le")
			if !ok {
				continue
			}
			bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
			if err != nil {
				continue
			}
			if t.buckets == nil {
				t.buckets = map[float64]float64{}
			}
			t.buckets[bound] = v
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
		d := stageTotal{sum: after.sum - b.sum, count: after.count - b.count}
		if d.count <= 0 {
			continue
		}
		if after.buckets != nil {
			d.buckets = map[float64]float64{}
			for le, n := range after.buckets {
				d.buckets[le] = n - b.buckets[le]
			}
		}
		out[stage] = d
	}
	return out
}

// plus is t and o together (two measured windows of the same stages).
func (t stageTimes) plus(o stageTimes) stageTimes {
	out := stageTimes{}
	for _, src := range []stageTimes{t, o} {
		for stage, v := range src {
			sum := out[stage]
			sum.sum += v.sum
			sum.count += v.count
			for le, n := range v.buckets {
				if sum.buckets == nil {
					sum.buckets = map[float64]float64{}
				}
				sum.buckets[le] += n
			}
			out[stage] = sum
		}
	}
	return out
}

// quantile estimates the q-quantile (0 < q < 1) of the stage's own time
// from its buckets, interpolating linearly within the bucket that holds
// it (the buckets double, so the estimate is within that bucket's span);
// ok is false without buckets or observations.
func (s stageTotal) quantile(q float64) (d time.Duration, ok bool) {
	if len(s.buckets) == 0 || s.count <= 0 {
		return 0, false
	}
	bounds := slices.Sorted(maps.Keys(s.buckets))
	rank := q * s.count
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		n := s.buckets[le]
		if n >= rank && n > below {
			if math.IsInf(le, 1) {
				le = lower // above the last bound: report the bound
			}
			v := lower + (le-lower)*(rank-below)/(n-below)
			return time.Duration(math.Round(v * float64(time.Second))), true
		}
		lower, below = le, n
	}
	return time.Duration(math.Round(lower * float64(time.Second))), true
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
	"inspect":      "inspect (runtime inspection rules; none configured here)",
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
