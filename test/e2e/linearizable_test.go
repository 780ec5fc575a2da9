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
)

// regInput is one operation on a secret: a write ("secret set") or a
// linearizable read ("secret get --linearizable").
type regInput struct {
	Key   string
	Write bool
	Value string // the literal written (unique per write)
}

// regOutput is what the operation returned: the secret's version. Unknown
// marks a write whose outcome is unknown (gwctl failed or timed out).
type regOutput struct {
	Version int64
	Unknown bool
}

// versionModel models each secret as a register holding its version: the
// number of writes applied to it. A write moves it from v to v+1 and returns
// v+1; a read returns v; a missing secret has version 0.
var versionModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).Key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range sortedKeys(byKey) {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		v := state.(int64)
		in, out := input.(regInput), output.(regOutput)
		if in.Write {
			return out.Unknown || out.Version == v+1, v + 1
		}
		return out.Version == v, v
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		switch {
		case in.Write && out.Unknown:
			return fmt.Sprintf("set(%s, %s) → ?", in.Key, in.Value)
		case in.Write:
			return fmt.Sprintf("set(%s, %s) → v%d", in.Key, in.Value, out.Version)
		}
		return fmt.Sprintf("get(%s) → v%d", in.Key, out.Version)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("v%d", state.(int64)) },
}

// secretJSON is the output of "secret set|get -o json".
type secretJSON struct {
	Secret struct {
		Meta struct {
			Name string `json:"name"`
		} `json:"meta"`
		Version harness.Int64 `json:"version"`
	} `json:"secret"`
}

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
				in := regInput{Key: keys[rng.IntN(len(keys))], Write: rng.IntN(2) == 0}
				var r harness.Result
				if in.Write {
					in.Value = fmt.Sprintf("v%d", writeSeq.Add(1))
					r = harness.Gwctl(t, env, "--server", servers, "secret", "set", in.Key, "--from-literal", in.Value, "-o", "json", "--timeout", "10s")
				} else {
					r = harness.Gwctl(t, env, "--server", servers, "secret", "get", in.Key, "-o", "json", "--linearizable", "--timeout", "10s")
				}
				call, ret := since(r.Start), since(r.Start.Add(r.Elapsed))
				op := porcupine.Operation{ClientId: id, Input: in, Call: call, Return: ret}
				out, ok, why := parseSecretOutput(in, r)
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
					op.Output = regOutput{Unknown: true}
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

	res, info := porcupine.CheckOperationsVerbose(versionModel, ops, time.Minute)
	if res != porcupine.Ok {
		// ArtifactDir is t.TempDir() unless the run asks to keep artifacts
		// (go test -artifacts -outputdir DIR).
		path := filepath.Join(t.ArtifactDir(), "linearizability.html")
		if err := porcupine.VisualizePath(versionModel, info, path); err != nil {
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

// parseSecretOutput turns one gwctl run into the operation's output. A read
// of a secret that does not exist returns version 0. ok is false when the
// outcome is unknown; why says what went wrong.
func parseSecretOutput(in regInput, r harness.Result) (out regOutput, ok bool, why string) {
	if !r.OK() {
		if !in.Write && strings.Contains(r.Stderr, "not_found") && strings.Contains(r.Stderr, "does not exist") {
			return regOutput{Version: 0}, true, ""
		}
		return out, false, strings.TrimSpace(r.Stderr)
	}
	var s secretJSON
	if err := r.JSON(&s); err != nil {
		return out, false, err.Error()
	}
	if s.Secret.Meta.Name != in.Key || s.Secret.Version <= 0 {
		return out, false, fmt.Sprintf("unexpected output %q", r.Stdout)
	}
	return regOutput{Version: int64(s.Secret.Version)}, true, ""
}

// TestVersionModelRejectsStaleRead makes sure the model used above can fail:
// a read that starts after a write of version 1 returned must not see 0.
func TestVersionModelRejectsStaleRead(t *testing.T) {
	w := regInput{Key: "k", Write: true, Value: "a"}
	r := regInput{Key: "k"}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{name: "read after write sees it", want: true, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: regOutput{Version: 1}, Call: 0, Return: 10},
			{ClientId: 1, Input: r, Output: regOutput{Version: 1}, Call: 20, Return: 30},
		}},
		{name: "stale read", want: false, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: regOutput{Version: 1}, Call: 0, Return: 10},
			{ClientId: 1, Input: r, Output: regOutput{Version: 0}, Call: 20, Return: 30},
		}},
		{name: "pending write may have happened", want: true, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: regOutput{Unknown: true}, Call: 0, Return: 100},
			{ClientId: 1, Input: r, Output: regOutput{Version: 1}, Call: 20, Return: 30},
		}},
		{name: "pending write may not have happened", want: true, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: regOutput{Unknown: true}, Call: 0, Return: 100},
			{ClientId: 1, Input: r, Output: regOutput{Version: 0}, Call: 20, Return: 30},
		}},
		{name: "version skipped", want: false, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: regOutput{Version: 2}, Call: 0, Return: 10},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(versionModel, tt.history); got != tt.want {
				t.Errorf("linearizable = %v, want %v", got, tt.want)
			}
		})
	}
}
