package state_test

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/limits/limitstest"
	"google.golang.org/protobuf/proto"
)

// Bounds FuzzApply holds every Apply to. A stack deeper than fuzzMaxStack
// crashes the fuzzed process (debug.SetMaxStack), which the fuzzer reports;
// applying one command may allocate at most fuzzMaxAlloc. The largest
// legitimate command, a policy set of 1 MiB of minimal policies, allocates
// about 90 MiB; the 100,000-parenthesis policy that was accepted before
// the limits grew the stack to 256 MiB.
const (
	fuzzMaxStack = 64 << 20
	fuzzMaxAlloc = 256 << 20
)

// FuzzApply drives state.Apply with well-formed commands generated from the
// fuzz bytes (package limitstest): puts of every kind whose Cedar sources
// and JSON Schemas nest or repeat up to far past the limits and whose
// fields sit at or just over theirs, deletes, freezes, touches, bootstraps,
// and command envelopes at and over their limits — on a state that holds
// every kind of resource and an enabled policy set. Apply must not panic,
// must stay within fuzzMaxStack and fuzzMaxAlloc, must give the same result
// for the same command twice, must leave the resources alone when it
// refuses, and may only store what resource.Validate accepts.
func FuzzApply(f *testing.F) {
	base := statetest.Run(f, state.New(), 1, statetest.Script()[:12])
	// Every voter at this binary's version, so rollouts may be written.
	base = statetest.Run(f, base, base.Index()+1, []statetest.Step{
		{Name: "n1 version", Cmd: statetest.Update(statetest.NodeAt("n1", clusterversion.Current()))},
		{Name: "n2 version", Cmd: statetest.Update(statetest.NodeAt("n2", clusterversion.Current()))},
	})
	for _, seed := range fuzzSeeds {
		f.Add(seed)
	}
	prev := debug.SetMaxStack(fuzzMaxStack)
	f.Cleanup(func() { debug.SetMaxStack(prev) })

	f.Fuzz(func(t *testing.T, data []byte) {
		g := limitstest.New(data)
		s := base
		for i := 0; i < 6 && (i == 0 || !g.Done()); i++ {
			cmd := command(g)
			index := s.Index() + 1
			next, res, alloc := measuredApply(s, index, cmd)
			if alloc > fuzzMaxAlloc {
				t.Fatalf("applying %s allocated %d MiB, more than %d", describe(cmd), alloc>>20, fuzzMaxAlloc>>20)
			}
			if next == nil || res == nil || next.Index() != index {
				t.Fatalf("Apply returned state %v (index %d), result %v", next != nil, next.Index(), res)
			}
			again, res2 := state.Apply(s, index, cmd)
			if !proto.Equal(res, res2) || len(statetest.Diff(next, again, nil)) > 0 {
				t.Fatalf("applying %s twice gave different results:\n%v\n%v\n%v", describe(cmd), res, res2, statetest.Diff(next, again, nil))
			}
			if res.GetError() != nil {
				if d := diffResources(s, next); d != "" {
					t.Fatalf("refused %s (%v) changed %s", describe(cmd), res.GetError(), d)
				}
			} else if r := res.GetResource(); r != nil && cmd.GetPut() != nil {
				if err := resource.Validate(r); err != nil {
					t.Fatalf("stored a %s that Validate refuses: %v", resource.KindOf(r), err)
				}
			}
			s = next
		}
	})
}

// fuzzSeeds start FuzzApply. Bytes run out as zeros, which choose the
// ordinary value (see limitstest.Gen), so each seed spells out only the
// choices that matter.
var fuzzSeeds = [][]byte{
	{}, // upsert an agent
	// A policy set "a" nested ~370,000 parentheses deep (count byte 146:
	// 2^20·(1+4/8), cut to the size budget).
	{0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 146},
	// The same, ~98,000 deep (count byte 142: 2^16·(1+4/8)).
	{0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 142},
	// A pin of pay/a whose input schema nests objects ~3,000 deep.
	{0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 137},
	// A policy set with fuzz text in a condition, inside three brackets.
	[]byte("\x00\x00\x00\x00\x00\x03" + strings.Repeat("\x00", 25) + "\x02\x00\x00\x00\x03\x00\x20" + ` "a\" // /* ( [ { || !! if then `),
	[]byte(strings.Repeat("\x00\x07\xff\x13", 16)),
}

// measuredApply is state.Apply, with the bytes it allocated.
func measuredApply(s *state.State, index uint64, cmd *fsmv1.Command) (*state.State, *fsmv1.Result, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	next, res := state.Apply(s, index, cmd)
	runtime.ReadMemStats(&after)
	return next, res, after.TotalAlloc - before.TotalAlloc
}

// command generates one well-formed command from g: mostly puts, on the
// names the base state uses (upstream "pay", secret "gh-token") and a few
// others, so writes meet existing resources.
func command(g *limitstest.Gen) *fsmv1.Command {
	var cmd *fsmv1.Command
	switch g.Intn(19) {
	case 16:
		cmd = statetest.Put(g.PolicyTests(g.Name()), mode(g))
	case 17:
		set := "limits"
		if g.Bool() {
			set = g.Name()
		}
		cmd = statetest.Put(g.Rollout(set), mode(g))
	case 18:
		cmd = statetest.Change(g.Name(), fsmv1.RolloutAction(g.Intn(7)), configv1.RolloutStage(g.Intn(7)), uint32(g.Intn(12)), g.Text(limits.PolicyMessage))
	case 9:
		cmd = statetest.Delete(resource.Kinds[g.Intn(len(resource.Kinds))], g.Name())
	case 10:
		cmd = statetest.SetFreeze(g.Bool(), g.Text(limits.FreezeReason))
	case 11:
		cmd = statetest.Touch()
	case 12:
		cmd = statetest.Bootstrap()
		id := cmd.GetBootstrap().GetIdentity()
		id.ClusterId, id.CaCertPem = g.Text(limits.ClusterID), g.Text(limits.CAPEM)
	case 13:
		cmd = statetest.Put(statetest.Secret(g.Name()), mode(g))
		cmd.GetPut().GetResource().GetSecret().Ciphertext = make([]byte, 1+g.Size(limits.SecretSealed))
	case 14:
		cmd = statetest.Put(statetest.AdminToken(g.Name(), configv1.Role(g.Intn(5)), nil), mode(g))
	case 15:
		n := statetest.Node(g.Name())
		n.RaftAddr = g.Text(limits.Addr) + ":7000"
		cmd = statetest.Put(n, mode(g))
	default:
		upstream := "pay"
		if g.Intn(4) == 3 {
			upstream = g.Name()
		}
		cmd = statetest.Put(g.Resource(upstream, "gh-token"), mode(g))
	}
	statetest.By(cmd, statetest.BootToken, "", 100)
	switch g.Intn(8) {
	case 4:
		cmd.RequestId = strings.Repeat("r", g.Size(limits.RequestID))
	case 5:
		cmd.Method = strings.Repeat("m", g.Size(limits.Method))
	case 6:
		cmd.Actor.TokenId = strings.Repeat("t", g.Size(limits.Actor))
	case 7:
		cmd.RequestId = "same-request" // a retry of whatever came before
	}
	return cmd
}

func mode(g *limitstest.Gen) fsmv1.WriteMode {
	switch g.Intn(16) {
	case 13:
		return fsmv1.WriteMode_WRITE_MODE_CREATE
	case 14:
		return fsmv1.WriteMode_WRITE_MODE_UPDATE
	case 15:
		return fsmv1.WriteMode_WRITE_MODE_UNSPECIFIED
	default:
		return fsmv1.WriteMode_WRITE_MODE_UPSERT
	}
}

// describe names a command for a failure message without its (possibly
// megabytes of) content.
func describe(cmd *fsmv1.Command) string {
	switch op := cmd.GetOp().(type) {
	case *fsmv1.Command_Put:
		r := op.Put.GetResource()
		return "put " + string(resource.KindOf(r)) + " " + strings.ToValidUTF8(resource.Name(r)[:min(len(resource.Name(r)), 40)], "?") +
			" of " + strconv.Itoa(proto.Size(r)) + " bytes"
	case *fsmv1.Command_Delete:
		return "delete " + op.Delete.GetKind()
	default:
		return fmt.Sprintf("%T", cmd.GetOp())
	}
}

// diffResources names the first resource that differs between a and b, or
// returns "".
func diffResources(a, b *state.State) string {
	ra, rb := statetest.Resources(a), statetest.Resources(b)
	if len(ra) != len(rb) {
		return "the number of resources from " + strconv.Itoa(len(ra)) + " to " + strconv.Itoa(len(rb))
	}
	for i := range ra {
		if !proto.Equal(ra[i], rb[i]) {
			return string(resource.KindOf(ra[i])) + " " + resource.Name(ra[i])
		}
	}
	return ""
}
