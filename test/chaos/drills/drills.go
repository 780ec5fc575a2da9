// Package drills holds the fault drills of "make chaos": each starts the
// real binaries on loopback (test/harness), puts them under load, injects
// one kind of fault (kill -9, SIGSTOP, a hung upstream) and checks its own
// invariants from what the load observed and what the processes recorded,
// never from what it assumes. test/chaos runs them all at full size and
// prints one verdict line each; test/e2e runs some at CI size.
//
// A drill takes a testing.TB: a *testing.T in the tests, a
// *harness.Program in the command. An invariant that does not hold is a
// t.Errorf (the drill goes on and gathers the rest of its figures); a
// setup that fails is a t.Fatalf.
package drills

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Size scales a drill: how long each phase of load runs.
type Size struct {
	// Name labels the size in reports ("full" or "ci").
	Name string
	// Phase is how long the load runs before, between and after faults.
	Phase time.Duration
	// Pause is how long a SIGSTOPped node stays stopped.
	Pause time.Duration
	// LatencyBounds turns on the drills' latency bounds (a healthy
	// upstream's p99 while another hangs, how soon past its timeout a
	// hung call fails). They hold on a quiet machine; the CI size runs on
	// shared, heavily loaded runners, so there the drills check the
	// invariants only (every call answered, none served by a hung
	// upstream, none failed on a healthy one) and report the latencies as
	// figures. Speed goals are benchmarks' business, not tests'.
	LatencyBounds bool
}

// Full is the size test/chaos runs.
var Full = Size{Name: "full", Phase: 6 * time.Second, Pause: 5 * time.Second, LatencyBounds: true}

// CI is the size the e2e tests run: each drill well under half a minute.
var CI = Size{Name: "ci", Phase: 3 * time.Second, Pause: 3 * time.Second}

// Func is a drill. It records its figures in v and fails t when an
// invariant does not hold.
type Func func(t testing.TB, s Size, v *Verdict)

// Drill is a named drill.
type Drill struct {
	Name string
	// What says in one line what the drill does and checks.
	What string
	Run  Func
}

// All are the drills in the order test/chaos runs them.
var All = []Drill{
	{"leader-kill", "kill -9 the Raft leader under config writes and read-only calls, then restart it", LeaderKill},
	{"partition", "SIGSTOP the leader, then a follower, under the same load", Partition},
	{"all-control-planes-down", "kill every control-plane node: data planes degrade, then recover", AllControlPlanesDown},
	{"dataplane-restart-while-cp-down", "restart a data plane with no control plane: it serves its last-known-good snapshot", DataplaneRestartWhileCPDown},
	{"dataplane-kill", "kill -9 a data plane under load: every answered call audited exactly once, chains intact", DataplaneKill},
	{"upstream-hang", "one of two upstreams hangs: its calls fail within the per-call timeout, the other's are unaffected", UpstreamHang},
	{"etcd", "control plane on 3 etcd members: kill -9 an etcd member, then the elected node, then restart a node after etcd compacted its watch position away", Etcd},
}

// Lookup returns the drill named name.
func Lookup(name string) (Drill, bool) {
	for _, d := range All {
		if d.Name == name {
			return d, true
		}
	}
	return Drill{}, false
}

// Names lists the drills' names.
func Names() []string {
	var out []string
	for _, d := range All {
		out = append(out, d.Name)
	}
	return out
}

// Verdict collects one run of a drill: the figures that back its verdict
// and the invariants that did not hold. It is safe for concurrent use.
type Verdict struct {
	Drill string
	Size  string

	mu       sync.Mutex
	start    time.Time
	elapsed  time.Duration
	figures  []string
	failures []string
}

// NewVerdict starts the verdict of a run of drill at size s.
func NewVerdict(drill string, s Size) *Verdict {
	return &Verdict{Drill: drill, Size: s.Name, start: time.Now()}
}

// Figure adds one figure to the verdict line ("reads 412, 0 failed").
func (v *Verdict) Figure(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.figures = append(v.figures, fmt.Sprintf(format, args...))
}

// Check fails t with the message unless ok, and keeps the message for the
// report.
func (v *Verdict) Check(t testing.TB, ok bool, format string, args ...any) bool {
	t.Helper()
	if ok {
		return true
	}
	msg := fmt.Sprintf(format, args...)
	t.Errorf("%s: invariant violated: %s", v.Drill, msg)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.failures = append(v.failures, msg)
	return false
}

// Finish stops the verdict's clock.
func (v *Verdict) Finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.elapsed == 0 {
		v.elapsed = time.Since(v.start)
	}
}

// Failures are the invariants that did not hold.
func (v *Verdict) Failures() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.failures...)
}

// Line is the verdict line: "DRILL <name>: PASS|FAIL — <figures>". passed
// is the caller's judgement, which also counts failures outside the
// invariants (a setup that could not finish).
func (v *Verdict) Line(passed bool) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	word := "PASS"
	if !passed {
		word = "FAIL"
	}
	figures := strings.Join(v.figures, "; ")
	if figures == "" {
		figures = "no figures (the drill did not get to its load; see the log)"
	}
	line := fmt.Sprintf("DRILL %s: %s — %s; took %s", v.Drill, word, figures, v.elapsed.Round(100*time.Millisecond))
	for _, f := range v.failures {
		line += "\n    violated: " + f
	}
	return line
}

// Run runs d at size s with t and returns its verdict; the verdict passes
// when t has not failed.
func Run(t testing.TB, d Drill, s Size) *Verdict {
	t.Helper()
	v := NewVerdict(d.Name, s)
	defer v.Finish()
	d.Run(t, s, v)
	return v
}
