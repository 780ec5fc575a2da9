package e2e

import (
	"cmp"
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

// TestLinearizableHistory records a concurrent history of secret writes and
// linearizable reads from three gwctl clients, with the leader killed with
// SIGKILL a third of the way through and restarted two thirds of the way
// through, and checks it with porcupine against a versioned register per
// secret. Writes that failed have unknown outcomes (they may still apply
// later) and stay pending; failed reads are dropped.
func TestLinearizableHistory(t *testing.T) {
	c := harness.Cluster3(t)
	victim := c.Leader(t, 10*time.Second)

	const (
		clients      = 3
		opsPerClient = 45
		total        = clients * opsPerClient
	)
	keys := []string{"k0", "k1", "k2"}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d; %d clients × %d operations on %v; leader %s", seed, clients, opsPerClient, keys, victim.NodeID)

	var (
		mu         sync.Mutex
		ops        []porcupine.Operation
		failed     []string
		completed  atomic.Int32
		stop       atomic.Bool
		writeSeq   atomic.Int64
		third      = make(chan struct{})
		twoThirds  = make(chan struct{})
		wg         sync.WaitGroup
		historyT0  = time.Now()
		urls       = c.URLs()
		since      = func(tm time.Time) int64 { return tm.Sub(historyT0).Nanoseconds() }
		lastReturn int64
	)
	for id := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(id)))
			env := c.BaseEnv()
			servers := strings.Join(rotate(urls, id), ",")
			for range opsPerClient {
				if stop.Load() {
					return
				}
				in := linearize.Input{Key: keys[rng.IntN(len(keys))], Write: rng.IntN(2) == 0}
				var r harness.Result
				if in.Write {
					in.Value = fmt.Sprintf("v%d", writeSeq.Add(1))
					r = harness.Gwctl(t, env, "--server", servers, "secret", "set", in.Key, "--hosts", linearize.Hosts, "--from-literal", in.Value, "-o", "json", "--timeout", "10s")
				} else {
					r = harness.Gwctl(t, env, "--server", servers, "secret", "get", in.Key, "-o", "json", "--linearizable", "--timeout", "10s")
				}
				call, ret := since(r.Start), since(r.Start.Add(r.Elapsed))
				op := porcupine.Operation{ClientId: id, Input: in, Call: call, Return: ret}
				out, ok, why := linearize.ParseSecret(in, r)
				if r.OK() && !ok {
					t.Errorf("client %d: gwctl succeeded but its output is unusable: %s", id, why)
				}
				mu.Lock()
				lastReturn = max(lastReturn, ret)
				switch {
				case ok:
					op.Output = out
					ops = append(ops, op)
				case in.Write:
					// Unknown outcome: pending until the end of the history.
					op.Output = linearize.Output{Unknown: true}
					op.Return = -1
					ops = append(ops, op)
					failed = append(failed, fmt.Sprintf("client %d set(%s, %s) at %+.3fs: %s", id, in.Key, in.Value, float64(call)/1e9, why))
				default:
					failed = append(failed, fmt.Sprintf("client %d get(%s) at %+.3fs (dropped): %s", id, in.Key, float64(call)/1e9, why))
				}
				mu.Unlock()
				switch completed.Add(1) {
				case total / 3:
					close(third)
				case 2 * total / 3:
					close(twoThirds)
				}
			}
		}()
	}
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
	})
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	awaitSignal := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-allDone:
			t.Fatalf("the clients finished before %s", what)
		case <-time.After(2 * time.Minute):
			t.Fatalf("the clients did not reach %s within 2m", what)
		}
	}

	awaitSignal(third, "a third of the operations")
	victim.Kill()
	killedAt := since(time.Now())
	awaitSignal(twoThirds, "two thirds of the operations")
	victim.Restart()
	victim.AwaitReady(t, harness.StartTimeout)
	restartedAt := since(time.Now())
	select {
	case <-allDone:
	case <-time.After(3 * time.Minute):
		t.Fatal("the clients did not finish within 3m")
	}

	// A pending write may take effect at any time after its call; returning
	// after every observation is the same as never returning.
	pending := 0
	for i := range ops {
		if ops[i].Return == -1 {
			ops[i].Return = lastReturn + 1
			pending++
		}
	}
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	t.Logf("history: %d operations recorded (%d pending writes), %d failed; leader %s killed at %+.3fs, restarted and ready at %+.3fs",
		len(ops), pending, len(failed), victim.NodeID, float64(killedAt)/1e9, float64(restartedAt)/1e9)
	for _, f := range failed {
		t.Logf("  failed: %s", f)
	}
	if len(ops) < total/2 {
		t.Errorf("only %d of %d operations are in the history", len(ops), total)
	}

	res, info := porcupine.CheckOperationsVerbose(linearize.Model, ops, time.Minute)
	if res != porcupine.Ok {
		// ArtifactDir is t.TempDir() unless the run asks to keep artifacts
		// (go test -artifacts -outputdir DIR).
		path := filepath.Join(t.ArtifactDir(), "linearizability.html")
		if err := porcupine.VisualizePath(linearize.Model, info, path); err != nil {
			t.Logf("write the visualization: %v", err)
		}
		t.Errorf("porcupine: the history is %s (not linearizable); visualization: %s", res, path)
		if f, err := os.Stat(path); err == nil {
			t.Logf("visualization: %d bytes; rerun with -artifacts -outputdir DIR to keep it", f.Size())
		}
		return
	}
	t.Logf("porcupine: the history of %d operations is linearizable", len(ops))

	c.MustCleanShutdown(t)
}
