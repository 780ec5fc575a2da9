// Package rolloutgate reads and judges the automatic gates of a policy
// rollout: thresholds on what data planes measured while the candidate was
// in shadow or canary, whose breach rolls the rollout back.
//
// A gate is written METRIC>VALUE or METRIC>=VALUE (spaces allowed, names
// case-insensitive):
//
//	deny_increase>1%              net share of calls the candidate denies
//	                              and the active version allows
//	allow_to_deny>5               calls the candidate denies, the active allows
//	deny_to_allow>0               calls the candidate allows, the active denies
//	eval_errors>0                 calls whose candidate decision had errors
//	upstream_errors_canary>2×baseline
//	                              canary calls the upstream failed, as a share
//	                              of the canary's forwarded calls, against the
//	                              same share outside the canary ("2x" works)
//	min_calls=100                 judge no gate, and advance no stage, before
//	                              the stage counted this many calls
//
// VALUE is a count (an integer), a percentage of the stage's calls ("1%",
// "0.5%"), or for upstream_errors_canary a multiple of the baseline's
// rate. In shadow the compared calls are every call (the active version
// decided, the candidate was evaluated beside it); in canary they are the
// canary agents' calls (the candidate decided, the active version beside
// it), and the baseline is everyone else's.
package rolloutgate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/limits"
)

// Metric names what a gate measures.
type Metric string

// Metrics.
const (
	DenyIncrease         Metric = "deny_increase"
	AllowToDeny          Metric = "allow_to_deny"
	DenyToAllow          Metric = "deny_to_allow"
	EvalErrors           Metric = "eval_errors"
	UpstreamErrorsCanary Metric = "upstream_errors_canary"
	// MinCalls is not a threshold but the least calls a stage counts
	// before its gates are judged and before it may end.
	MinCalls Metric = "min_calls"
)

var metrics = []Metric{DenyIncrease, AllowToDeny, DenyToAllow, EvalErrors, UpstreamErrorsCanary, MinCalls}

// Unit is what a gate's value counts.
type Unit int

// Units.
const (
	// Count: a number of calls.
	Count Unit = iota
	// Percent: a percentage of the stage's calls (or, for
	// upstream_errors_canary, of its forwarded calls).
	Percent
	// Baseline: a multiple of the baseline's rate.
	Baseline
)

// Gate is one parsed gate.
type Gate struct {
	// Text is the gate in its canonical form ("deny_increase>1%").
	Text   string
	Metric Metric
	// OrEqual: breached at the value too (>=).
	OrEqual bool
	Unit    Unit
	Value   float64
}

// Gates are a rollout's gates.
type Gates struct {
	// MinCalls is the least calls before judging (0: none asked; a gate
	// is still judged only once a stage counted a call).
	MinCalls uint64
	List     []Gate
}

// Parse reads gate expressions. Every problem is named, with what to
// write instead.
func Parse(exprs []string) (Gates, error) {
	var (
		out      Gates
		problems []string
		seen     = map[string]bool{}
	)
	if len(exprs) > limits.RolloutGates {
		return Gates{}, fmt.Errorf("at most %d gates", limits.RolloutGates)
	}
	for _, e := range exprs {
		g, err := parseOne(e)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if seen[g.Text] {
			problems = append(problems, fmt.Sprintf("gate %q is given twice", g.Text))
			continue
		}
		seen[g.Text] = true
		if g.Metric == MinCalls {
			if out.MinCalls != 0 {
				problems = append(problems, "min_calls is given twice")
				continue
			}
			out.MinCalls = uint64(g.Value)
			continue
		}
		out.List = append(out.List, g)
	}
	if len(problems) > 0 {
		return Gates{}, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// Canonical returns exprs in canonical form, in the order given.
func Canonical(exprs []string) ([]string, error) {
	out := make([]string, 0, len(exprs))
	for _, e := range exprs {
		g, err := parseOne(e)
		if err != nil {
			return nil, err
		}
		out = append(out, g.Text)
	}
	if _, err := Parse(out); err != nil {
		return nil, err
	}
	return out, nil
}

const syntax = `write METRIC>VALUE (deny_increase>1%, eval_errors>0, upstream_errors_canary>2×baseline) or min_calls=N`

func parseOne(expr string) (Gate, error) {
	if len(expr) > limits.RolloutGate {
		return Gate{}, fmt.Errorf("a gate is at most %d bytes", limits.RolloutGate)
	}
	s := strings.ToLower(strings.Join(strings.Fields(expr), ""))
	if s == "" {
		return Gate{}, fmt.Errorf("an empty gate: %s", syntax)
	}
	i := strings.IndexAny(s, "<>=")
	if i <= 0 {
		return Gate{}, fmt.Errorf("gate %q: %s", expr, syntax)
	}
	name, rest := Metric(s[:i]), s[i:]
	known := false
	for _, m := range metrics {
		known = known || m == name
	}
	if !known {
		return Gate{}, fmt.Errorf("gate %q: unknown metric %q (one of deny_increase, allow_to_deny, deny_to_allow, eval_errors, upstream_errors_canary, min_calls)", expr, name)
	}
	g := Gate{Metric: name}
	var op string
	switch {
	case strings.HasPrefix(rest, ">="):
		g.OrEqual, op, rest = true, ">=", rest[2:]
	case strings.HasPrefix(rest, ">"):
		op, rest = ">", rest[1:]
	case name == MinCalls && strings.HasPrefix(rest, "="):
		op, rest = "=", rest[1:]
	default:
		return Gate{}, fmt.Errorf("gate %q: a gate is breached above its value: use > or >=", expr)
	}
	if name == MinCalls {
		if op == ">" {
			return Gate{}, fmt.Errorf("gate %q: write min_calls=N", expr)
		}
		n, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || n == 0 {
			return Gate{}, fmt.Errorf("gate %q: min_calls takes a whole number of calls, at least 1", expr)
		}
		g.Value = float64(n)
		g.Text = fmt.Sprintf("min_calls=%d", n)
		return g, nil
	}
	num := rest
	switch {
	case strings.HasSuffix(rest, "%"):
		g.Unit, num = Percent, strings.TrimSuffix(rest, "%")
	case strings.HasSuffix(rest, "baseline"):
		if name != UpstreamErrorsCanary {
			return Gate{}, fmt.Errorf("gate %q: only upstream_errors_canary compares with the baseline", expr)
		}
		num = strings.TrimSuffix(rest, "baseline")
		cut := false
		for _, x := range []string{"×", "x", "*"} {
			if strings.HasSuffix(num, x) {
				num, cut = strings.TrimSuffix(num, x), true
				break
			}
		}
		if !cut {
			return Gate{}, fmt.Errorf("gate %q: write N×baseline (or Nxbaseline)", expr)
		}
		g.Unit = Baseline
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v != v {
		return Gate{}, fmt.Errorf("gate %q: %q is not a number ≥ 0: %s", expr, num, syntax)
	}
	switch g.Unit {
	case Count:
		if v != float64(uint64(v)) || v > 1e12 {
			return Gate{}, fmt.Errorf("gate %q: a count is a whole number (or write a percentage: %s%%)", expr, num)
		}
	case Percent:
		if v > 100 {
			return Gate{}, fmt.Errorf("gate %q: a percentage is at most 100", expr)
		}
	case Baseline:
		if v == 0 || v > 1e6 {
			return Gate{}, fmt.Errorf("gate %q: the multiple of the baseline is above 0", expr)
		}
	}
	g.Value = v
	g.Text = string(name) + op + formatValue(g.Unit, v)
	return g, nil
}

func formatValue(u Unit, v float64) string {
	n := strconv.FormatFloat(v, 'f', -1, 64)
	switch u {
	case Percent:
		return n + "%"
	case Baseline:
		return n + "×baseline"
	}
	return n
}

// Counts are what data planes counted for one cohort of one stage (see
// portcullis.audit.v1.RolloutCount).
type Counts struct {
	Calls, AllowToDeny, DenyToAllow, EvalErrors, Forwarded, UpstreamErrors uint64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Calls += o.Calls
	c.AllowToDeny += o.AllowToDeny
	c.DenyToAllow += o.DenyToAllow
	c.EvalErrors += o.EvalErrors
	c.Forwarded += o.Forwarded
	c.UpstreamErrors += o.UpstreamErrors
}

// Stage is what one stage (or canary step) measured: the compared calls
// (every call in shadow, the canary's in canary) and, in canary, the
// baseline (everyone else's).
type Stage struct {
	Canary   bool
	Compared Counts
	Baseline Counts
}

// Result is one gate judged.
type Result struct {
	Gate Gate
	// Judged: the stage counted enough calls to judge it.
	Judged bool
	// Breached: judged and over its threshold.
	Breached bool
	// Value is the measured value as the gate reads it ("2.5%", "3",
	// "4% vs baseline 1%"); "" when there is nothing to measure yet.
	Value string
}

// Reason words a breach for an operator: the gate, the value measured and
// the calls it was measured over.
func (r Result) Reason(stage string) string {
	return fmt.Sprintf("gate %s breached in %s: %s", r.Gate.Text, stage, r.Value)
}

// Enough reports whether a stage counted the calls its gates need before
// it may be judged or end.
func (g Gates) Enough(s Stage) bool {
	if s.Compared.Calls < max(g.MinCalls, 1) {
		return false
	}
	if s.Canary && g.needsBaseline() && s.Baseline.Forwarded < max(g.MinCalls, 1) {
		return false
	}
	return true
}

func (g Gates) needsBaseline() bool {
	for _, x := range g.List {
		if x.Unit == Baseline {
			return true
		}
	}
	return false
}

// Judge judges every gate against what a stage measured. A gate on
// upstream errors is judged in canary only.
func (g Gates) Judge(s Stage) []Result {
	out := make([]Result, 0, len(g.List))
	least := max(g.MinCalls, 1)
	for _, x := range g.List {
		r := Result{Gate: x}
		c := s.Compared
		switch x.Metric {
		case UpstreamErrorsCanary:
			if !s.Canary {
				r.Value = "judged in canary"
				break
			}
			rate := pct(c.UpstreamErrors, c.Forwarded)
			switch x.Unit {
			case Baseline:
				base := pct(s.Baseline.UpstreamErrors, s.Baseline.Forwarded)
				r.Value = fmt.Sprintf("%s of %d canary calls vs baseline %s of %d", fmtPct(rate), c.Forwarded, fmtPct(base), s.Baseline.Forwarded)
				r.Judged = c.Forwarded >= least && s.Baseline.Forwarded >= least
				r.Breached = r.Judged && over(rate, base*x.Value, x.OrEqual)
			default:
				r.Value, r.Judged, r.Breached = judge(x, float64(c.UpstreamErrors), c.Forwarded, least)
			}
		case DenyIncrease:
			r.Value, r.Judged, r.Breached = judge(x, float64(c.AllowToDeny)-float64(c.DenyToAllow), c.Calls, least)
		case AllowToDeny:
			r.Value, r.Judged, r.Breached = judge(x, float64(c.AllowToDeny), c.Calls, least)
		case DenyToAllow:
			r.Value, r.Judged, r.Breached = judge(x, float64(c.DenyToAllow), c.Calls, least)
		case EvalErrors:
			r.Value, r.Judged, r.Breached = judge(x, float64(c.EvalErrors), c.Calls, least)
		}
		out = append(out, r)
	}
	return out
}

// judge compares n (of total calls) with a count or percent gate.
func judge(g Gate, n float64, total, least uint64) (value string, judged, breached bool) {
	judged = total >= least
	if g.Unit == Percent {
		rate := 0.0
		if total > 0 {
			rate = 100 * n / float64(total)
		}
		value = fmt.Sprintf("%s (%s of %d calls)", fmtPct(rate), strconv.FormatFloat(n, 'f', -1, 64), total)
		return value, judged, judged && over(rate, g.Value, g.OrEqual)
	}
	value = fmt.Sprintf("%s of %d calls", strconv.FormatFloat(n, 'f', -1, 64), total)
	return value, judged, judged && over(n, g.Value, g.OrEqual)
}

func over(v, limit float64, orEqual bool) bool {
	if orEqual {
		return v >= limit
	}
	return v > limit
}

func pct(n, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// fmtPct formats a percentage with at most two decimals.
func fmtPct(v float64) string { return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) + "%" }
