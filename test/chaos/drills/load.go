package drills

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/portcullis-gw/portcullis/test/harness"
	"github.com/portcullis-gw/portcullis/test/harness/linearize"
)

// call is one tools/call a load made.
type call struct {
	worker int
	dp     string
	args   map[string]any
	res    harness.ToolCall
	// err is nil when the tool ran and answered as expected.
	err error
	// answered is whether a JSON-RPC answer came back at all.
	answered bool
}

// load makes tools/calls from workers, each one call at a time at most
// every interval, until stopped. Each worker calls its data planes in
// turn, as its agent.
type load struct {
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once

	mu    sync.Mutex
	calls []call
}

// loadSpec configures startLoad.
type loadSpec struct {
	workers  int
	every    time.Duration
	dps      []*harness.Dataplane
	keys     []string // worker i calls as keys[i%len(keys)]
	action   string
	args     func(worker, i int) map[string]any
	validate func(c harness.ToolCall, args map[string]any) error // nil: ToolCall.Err
}

// startLoad starts spec's workers; the test's cleanup stops them if the
// drill does not.
func startLoad(t testing.TB, spec loadSpec) *load {
	l := &load{stop: make(chan struct{})}
	if spec.validate == nil {
		spec.validate = func(c harness.ToolCall, _ map[string]any) error { return c.Err() }
	}
	for w := range spec.workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			tick := time.NewTicker(spec.every)
			defer tick.Stop()
			for i := 0; ; i++ {
				dp := spec.dps[(w+i)%len(spec.dps)]
				args := spec.args(w, i)
				res, err := dp.CallTool(context.Background(), spec.keys[w%len(spec.keys)], spec.action, args)
				c := call{worker: w, dp: dp.Name, args: args, res: res, answered: err == nil}
				if err == nil {
					err = spec.validate(res, args)
				}
				c.err = err
				l.mu.Lock()
				l.calls = append(l.calls, c)
				l.mu.Unlock()
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// Stop lets the calls in flight finish, stops the workers and returns
// every call made. It may be called more than once.
func (l *load) Stop() []call {
	l.once.Do(func() { close(l.stop) })
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// readLoad is a load of get_weather calls on upstream, each for its own
// city, whose answers must be about that city.
func readLoad(t testing.TB, g *gateway, upstream string, dps []*harness.Dataplane, workers int, every time.Duration) *load {
	return startLoad(t, loadSpec{
		workers: workers, every: every, dps: dps, keys: g.agentKeys(), action: action(upstream, readTool),
		args: func(w, i int) map[string]any { return map[string]any{"city": fmt.Sprintf("c%d-%d", w, i)} },
		validate: func(c harness.ToolCall, args map[string]any) error {
			if err := c.Err(); err != nil {
				return err
			}
			if city := args["city"].(string); !strings.Contains(c.Text, city) {
				return fmt.Errorf("answer %q is not about %s", c.Text, city)
			}
			return nil
		},
	})
}

// stats summarizes calls.
type stats struct {
	n, failed     int
	p50, p99, max time.Duration
	firstFailures []string // up to 5
}

func summarize(calls []call) stats {
	var s stats
	var lat []time.Duration
	for _, c := range calls {
		s.n++
		lat = append(lat, c.res.Elapsed)
		if c.err != nil {
			s.failed++
			if len(s.firstFailures) < 5 {
				s.firstFailures = append(s.firstFailures, fmt.Sprintf("%s at %s: %v", c.dp, c.res.Start.Format("15:04:05.000"), c.err))
			}
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.p50 = lat[len(lat)*50/100]
		s.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		s.max = lat[len(lat)-1]
	}
	return s
}

func (s stats) String() string {
	return fmt.Sprintf("%d calls, %d failed, p50 %s p99 %s max %s", s.n, s.failed, ms(s.p50), ms(s.p99), ms(s.max))
}

// ms rounds d for a report.
func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// writeLoad is a steady config-write workload: clients gwctl processes,
// each doing secret sets and linearizable gets on a few keys one at a
// time through every control-plane URL (rotated per client), recorded in
// a linearizability history.
type writeLoad struct {
	h    *linearize.History
	keys []string
	stop atomic.Bool
	done sync.WaitGroup
}

func startWriteLoad(t testing.TB, c *harness.Cluster, clients int) *writeLoad {
	w := &writeLoad{h: linearize.NewHistory(), keys: []string{"k0", "k1", "k2"}}
	seed := uint64(time.Now().UnixNano())
	t.Logf("write load: seed %d, %d clients on %v", seed, clients, w.keys)
	urls := c.URLs()
	var seq atomic.Int64
	for id := range clients {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(id)))
			servers := strings.Join(append(slices.Clone(urls[id%len(urls):]), urls[:id%len(urls)]...), ",")
			for !w.stop.Load() {
				in := linearize.Input{Key: w.keys[rng.IntN(len(w.keys))], Write: rng.IntN(3) < 2}
				if in.Write {
					in.Value = fmt.Sprintf("v%d", seq.Add(1))
				}
				r := harness.Gwctl(t, c.BaseEnv(), append([]string{"--server", servers}, linearize.GwctlArgs(in, 10*time.Second)...)...)
				w.h.Record(id, in, r)
			}
		}()
	}
	t.Cleanup(w.Stop)
	return w
}

// Stop waits for the operations in flight and stops the clients.
func (w *writeLoad) Stop() {
	w.stop.Store(true)
	w.done.Wait()
}

// finish stops the clients, reads every key once more (linearizably, into
// the history), checks the history and records the outcome in v: the
// history must be linearizable, and every acknowledged write must be in
// the final versions.
func (w *writeLoad) finish(t testing.TB, c *harness.Cluster, v *Verdict) {
	t.Helper()
	w.Stop()
	lost := 0
	for _, k := range w.keys {
		in := linearize.Input{Key: k}
		var version int64
		err := harness.Poll(30*time.Second, func() error {
			r := harness.Gwctl(t, c.Env(), linearize.GwctlArgs(in, 10*time.Second)...)
			if ok, why := w.h.Record(99, in, r); !ok {
				return fmt.Errorf("final read of %s: %s", k, why)
			}
			out, _, _ := linearize.ParseSecret(in, r)
			version = out.Version
			return nil
		})
		if !v.Check(t, err == nil, "%v", err) {
			continue
		}
		acked, unknown := w.h.Writes(k)
		if version < int64(acked) || version > int64(acked+unknown) {
			lost++
			v.Check(t, false, "secret %s ends at version %d after %d acknowledged and %d unknown writes", k, version, acked, unknown)
		}
	}
	s := w.h.Check(time.Minute)
	for _, f := range s.Failed {
		t.Logf("  config op failed: %s", f)
	}
	v.Figure("config ops %d (%d writes acked, %d unknown, %d reads), history %s, acked writes lost %d",
		s.Ops, s.Acked, s.Unknown, s.Reads, linearizability(s), lost)
	v.Check(t, s.Acked > 0 && s.Reads > 0, "the write load made %d acknowledged writes and %d reads", s.Acked, s.Reads)
	if !v.Check(t, s.Result == porcupine.Ok, "porcupine: the history of %d operations is %s", s.Ops, s.Result) {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("portcullis-chaos-%s-%d.html", v.Drill, time.Now().Unix()))
		if err := porcupine.VisualizePath(linearize.Model, s.Info, path); err != nil {
			t.Logf("write the visualization: %v", err)
		} else {
			t.Logf("porcupine visualization: %s", path)
		}
	}
}

// linearizability names porcupine's result.
func linearizability(s linearize.Summary) string {
	switch s.Result {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Illegal:
		return "NOT linearizable"
	}
	return "unchecked (porcupine timed out)"
}

// agentKeys are the agents' API keys, in the spec's order.
func (g *gateway) agentKeys() []string {
	var keys []string
	for _, a := range g.agents {
		keys = append(keys, g.keys[a])
	}
	return keys
}
