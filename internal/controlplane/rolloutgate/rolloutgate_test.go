package rolloutgate_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/rolloutgate"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       []string
		want     []string // canonical texts of the threshold gates
		minCalls uint64
		err      string
	}{
		{name: "percent", in: []string{"deny_increase>1%"}, want: []string{"deny_increase>1%"}},
		{name: "spaces and case", in: []string{" Deny_Increase >= 0.5 % "}, want: []string{"deny_increase>=0.5%"}},
		{name: "count", in: []string{"eval_errors>0"}, want: []string{"eval_errors>0"}},
		{name: "baseline x", in: []string{"upstream_errors_canary>2xbaseline"}, want: []string{"upstream_errors_canary>2×baseline"}},
		{name: "baseline times", in: []string{"upstream_errors_canary > 1.5 × baseline"}, want: []string{"upstream_errors_canary>1.5×baseline"}},
		{name: "min calls", in: []string{"min_calls=100", "allow_to_deny>3"}, want: []string{"allow_to_deny>3"}, minCalls: 100},
		{name: "min calls >=", in: []string{"min_calls>=5"}, minCalls: 5},
		{name: "unknown metric", in: []string{"denies>1"}, err: `unknown metric "denies"`},
		{name: "less than", in: []string{"eval_errors<1"}, err: "use > or >="},
		{name: "fractional count", in: []string{"eval_errors>0.5"}, err: "whole number"},
		{name: "percent over 100", in: []string{"deny_increase>101%"}, err: "at most 100"},
		{name: "baseline on another metric", in: []string{"eval_errors>2xbaseline"}, err: "only upstream_errors_canary"},
		{name: "zero min calls", in: []string{"min_calls=0"}, err: "at least 1"},
		{name: "min calls >", in: []string{"min_calls>3"}, err: "min_calls=N"},
		{name: "twice", in: []string{"eval_errors>0", "eval_errors > 0"}, err: "given twice"},
		{name: "negative", in: []string{"deny_to_allow>-1"}, err: "not a number"},
		{name: "empty", in: []string{""}, err: "empty gate"},
		{name: "too long", in: []string{"eval_errors>" + strings.Repeat("0", 200)}, err: "at most 128 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := rolloutgate.Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range g.List {
				got = append(got, x.Text)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || g.MinCalls != tt.minCalls {
				t.Fatalf("Parse(%q) = %v min_calls %d, want %v min_calls %d", tt.in, got, g.MinCalls, tt.want, tt.minCalls)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	shadow := func(c rolloutgate.Counts) rolloutgate.Stage { return rolloutgate.Stage{Compared: c} }
	canary := func(c, b rolloutgate.Counts) rolloutgate.Stage {
		return rolloutgate.Stage{Canary: true, Compared: c, Baseline: b}
	}
	tests := []struct {
		name     string
		gates    []string
		stage    rolloutgate.Stage
		judged   bool
		breached bool
		value    string
	}{
		{name: "deny increase over", gates: []string{"deny_increase>1%"}, stage: shadow(rolloutgate.Counts{Calls: 100, AllowToDeny: 3, DenyToAllow: 1}),
			judged: true, breached: true, value: "2% (2 of 100 calls)"},
		{name: "deny increase at limit", gates: []string{"deny_increase>2%"}, stage: shadow(rolloutgate.Counts{Calls: 100, AllowToDeny: 3, DenyToAllow: 1}),
			judged: true},
		{name: "deny increase at limit inclusive", gates: []string{"deny_increase>=2%"}, stage: shadow(rolloutgate.Counts{Calls: 100, AllowToDeny: 3, DenyToAllow: 1}),
			judged: true, breached: true},
		{name: "more allowed is no increase", gates: []string{"deny_increase>0"}, stage: shadow(rolloutgate.Counts{Calls: 10, DenyToAllow: 4}),
			judged: true, value: "-4 of 10 calls"},
		{name: "eval errors", gates: []string{"eval_errors>0"}, stage: shadow(rolloutgate.Counts{Calls: 5, EvalErrors: 1}), judged: true, breached: true},
		{name: "no calls: not judged", gates: []string{"eval_errors>0"}, stage: shadow(rolloutgate.Counts{}), value: "0 of 0 calls"},
		{name: "min calls not reached", gates: []string{"min_calls=10", "allow_to_deny>0"}, stage: shadow(rolloutgate.Counts{Calls: 9, AllowToDeny: 9})},
		{name: "min calls reached", gates: []string{"min_calls=10", "allow_to_deny>0"}, stage: shadow(rolloutgate.Counts{Calls: 10, AllowToDeny: 1}), judged: true, breached: true},
		{name: "upstream errors in shadow: not judged", gates: []string{"upstream_errors_canary>0"}, stage: shadow(rolloutgate.Counts{Calls: 10, Forwarded: 10, UpstreamErrors: 10}),
			value: "judged in canary"},
		{name: "upstream errors vs baseline over", gates: []string{"upstream_errors_canary>2×baseline"},
			stage:  canary(rolloutgate.Counts{Calls: 10, Forwarded: 10, UpstreamErrors: 3}, rolloutgate.Counts{Calls: 100, Forwarded: 100, UpstreamErrors: 10}),
			judged: true, breached: true, value: "30% of 10 canary calls vs baseline 10% of 100"},
		{name: "upstream errors vs baseline under", gates: []string{"upstream_errors_canary>2×baseline"},
			stage:  canary(rolloutgate.Counts{Calls: 10, Forwarded: 10, UpstreamErrors: 2}, rolloutgate.Counts{Calls: 100, Forwarded: 100, UpstreamErrors: 10}),
			judged: true},
		{name: "upstream errors without baseline calls", gates: []string{"upstream_errors_canary>2×baseline"},
			stage: canary(rolloutgate.Counts{Calls: 10, Forwarded: 10, UpstreamErrors: 2}, rolloutgate.Counts{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := rolloutgate.Parse(tt.gates)
			if err != nil {
				t.Fatal(err)
			}
			rs := g.Judge(tt.stage)
			if len(rs) != 1 {
				t.Fatalf("%d results, want 1", len(rs))
			}
			r := rs[0]
			if r.Judged != tt.judged || r.Breached != tt.breached || (tt.value != "" && r.Value != tt.value) {
				t.Fatalf("judged %t breached %t value %q, want %t %t %q", r.Judged, r.Breached, r.Value, tt.judged, tt.breached, tt.value)
			}
		})
	}
}

func TestEnough(t *testing.T) {
	g, err := rolloutgate.Parse([]string{"min_calls=3", "upstream_errors_canary>2×baseline"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stage rolloutgate.Stage
		want  bool
	}{
		{"shadow short", rolloutgate.Stage{Compared: rolloutgate.Counts{Calls: 2}}, false},
		{"shadow enough", rolloutgate.Stage{Compared: rolloutgate.Counts{Calls: 3}}, true},
		{"canary without baseline", rolloutgate.Stage{Canary: true, Compared: rolloutgate.Counts{Calls: 3}}, false},
		{"canary with baseline", rolloutgate.Stage{Canary: true, Compared: rolloutgate.Counts{Calls: 3}, Baseline: rolloutgate.Counts{Calls: 3, Forwarded: 3}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.Enough(tt.stage); got != tt.want {
				t.Fatalf("Enough = %t, want %t", got, tt.want)
			}
		})
	}
}
