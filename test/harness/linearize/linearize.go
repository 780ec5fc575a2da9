// Package linearize checks histories of config writes against the control
// plane's promise of linearizability, with porcupine: each secret is a
// register holding its version, written with "gwctl secret set" and read
// with "gwctl secret get --linearizable". The end-to-end test of the
// control plane and the chaos drills record their histories with it.
package linearize

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Input is one operation on a secret: a write ("secret set") or a
// linearizable read ("secret get --linearizable").
type Input struct {
	Key   string
	Write bool
	Value string // the literal written (unique per write)
}

// Output is what the operation returned: the secret's version. Unknown
// marks a write whose outcome is unknown (gwctl failed or timed out).
type Output struct {
	Version int64
	Unknown bool
}

// Model models each secret as a register holding its version: the number
// of writes applied to it. A write moves it from v to v+1 and returns v+1;
// a read returns v; a missing secret has version 0.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(Input).Key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		v := state.(int64)
		in, out := input.(Input), output.(Output)
		if in.Write {
			return out.Unknown || out.Version == v+1, v + 1
		}
		return out.Version == v, v
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
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

// Hosts is the binding of every secret the checks write (never used by an
// upstream: the checks only read and write secrets).
const Hosts = "linearize.invalid"

// GwctlArgs are the gwctl arguments of in (without --server), bounded by
// timeout.
func GwctlArgs(in Input, timeout time.Duration) []string {
	if in.Write {
		return []string{"secret", "set", in.Key, "--hosts", Hosts, "--from-literal", in.Value, "-o", "json", "--timeout", timeout.String()}
	}
	return []string{"secret", "get", in.Key, "-o", "json", "--linearizable", "--timeout", timeout.String()}
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

// ParseSecret turns one gwctl run of in into the operation's output. A
// read of a secret that does not exist returns version 0. ok is false when
// the outcome is unknown; why says what went wrong.
func ParseSecret(in Input, r harness.Result) (out Output, ok bool, why string) {
	if !r.OK() {
		if !in.Write && strings.Contains(r.Stderr, "not_found") && strings.Contains(r.Stderr, "does not exist") {
			return Output{Version: 0}, true, ""
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
	return Output{Version: int64(s.Secret.Version)}, true, ""
}

// History records operations from concurrent clients. It is safe for
// concurrent use.
type History struct {
	t0 time.Time

	mu         sync.Mutex
	ops        []porcupine.Operation
	failed     []string
	lastReturn int64
	acked      map[string]int // acknowledged writes by key
	unknown    map[string]int // writes of unknown outcome by key
	reads      int
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History {
	return &History{t0: time.Now(), acked: map[string]int{}, unknown: map[string]int{}}
}

// Record adds the gwctl run r of in by client. A write whose outcome is
// unknown stays pending to the end of the history (it may take effect at
// any time after its call); a failed read is dropped. It returns whether
// the operation succeeded, and if not, why.
func (h *History) Record(client int, in Input, r harness.Result) (bool, string) {
	call, ret := r.Start.Sub(h.t0).Nanoseconds(), r.Start.Add(r.Elapsed).Sub(h.t0).Nanoseconds()
	out, ok, why := ParseSecret(in, r)
	if r.OK() && !ok {
		why = "gwctl succeeded but its output is unusable: " + why
	}
	op := porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastReturn = max(h.lastReturn, ret)
	switch {
	case ok:
		h.ops = append(h.ops, op)
		if in.Write {
			h.acked[in.Key]++
		} else {
			h.reads++
		}
	case in.Write:
		op.Output, op.Return = Output{Unknown: true}, -1
		h.ops = append(h.ops, op)
		h.unknown[in.Key]++
		h.failed = append(h.failed, fmt.Sprintf("client %d set(%s, %s) at %+.3fs: %s", client, in.Key, in.Value, float64(call)/1e9, why))
	default:
		h.failed = append(h.failed, fmt.Sprintf("client %d get(%s) at %+.3fs (dropped): %s", client, in.Key, float64(call)/1e9, why))
	}
	return ok, why
}

// Summary is what a checked history held.
type Summary struct {
	Ops     int // operations in the history, pending writes included
	Acked   int // acknowledged writes
	Unknown int // writes of unknown outcome
	Reads   int // successful reads
	// Failed describes each failed operation.
	Failed []string
	// Result is porcupine's verdict; Info can visualize it.
	Result porcupine.CheckResult
	Info   porcupine.LinearizationInfo
}

// Writes counts the writes to key: acknowledged, and of unknown outcome.
func (h *History) Writes(key string) (acked, unknown int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.acked[key], h.unknown[key]
}

// Check runs porcupine on the history, with at most timeout for the
// search (an Unknown result when it runs out).
func (h *History) Check(timeout time.Duration) Summary {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	s := Summary{Failed: slices.Clone(h.failed), Reads: h.reads}
	for _, n := range h.acked {
		s.Acked += n
	}
	for _, n := range h.unknown {
		s.Unknown += n
	}
	last := h.lastReturn
	h.mu.Unlock()
	for i := range ops {
		if ops[i].Return == -1 {
			ops[i].Return = last + 1
		}
	}
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	s.Ops = len(ops)
	s.Result, s.Info = porcupine.CheckOperationsVerbose(Model, ops, timeout)
	return s
}
