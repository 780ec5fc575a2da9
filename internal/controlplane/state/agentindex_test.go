package state_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// scanIndex is the agent identifier index as a scan of every agent in s
// computes it: the expected value of state.AgentIndex.
func scanIndex(s *state.State) []string {
	var out []string
	s.Each(resource.Agent, func(r *fsmv1.Resource) bool {
		a, name := r.GetAgent(), resource.Name(r)
		for _, k := range a.GetApiKeys() {
			out = append(out, "k "+k.GetId()+" "+name)
		}
		for _, id := range a.GetSpiffeIds() {
			out = append(out, "s "+id+" "+name)
		}
		for _, fp := range a.GetCertFingerprints() {
			out = append(out, "c "+fp+" "+name)
		}
		return true
	})
	slices.Sort(out)
	return slices.Compact(out)
}

// scanConflict is the error message a write of a must be refused with,
// found by a scan of every agent in name order, as the state machine did
// before the index: the first other agent sharing an identifier with a,
// and the first such identifier in that agent's order (API key ids, SPIFFE
// ids, certificate fingerprints). "" means no conflict.
func scanConflict(s *state.State, a *configv1.Agent) string {
	mine := map[string]bool{}
	for _, e := range scanIndexOf(a) {
		mine[e] = true
	}
	msg := ""
	s.Each(resource.Agent, func(r *fsmv1.Resource) bool {
		o := r.GetAgent()
		if resource.Name(r) == a.GetMeta().GetName() {
			return true
		}
		for _, k := range o.GetApiKeys() {
			if mine["k "+k.GetId()] {
				msg = fmt.Sprintf("API key id %q is already used by agent %q", k.GetId(), resource.Name(r))
				return false
			}
		}
		for _, id := range o.GetSpiffeIds() {
			if mine["s "+id] {
				msg = fmt.Sprintf("SPIFFE id %q already identifies agent %q", id, resource.Name(r))
				return false
			}
		}
		for _, fp := range o.GetCertFingerprints() {
			if mine["c "+fp] {
				msg = fmt.Sprintf("certificate %s already identifies agent %q", fp, resource.Name(r))
				return false
			}
		}
		return true
	})
	return msg
}

func scanIndexOf(a *configv1.Agent) []string {
	var out []string
	for _, k := range a.GetApiKeys() {
		out = append(out, "k "+k.GetId())
	}
	for _, id := range a.GetSpiffeIds() {
		out = append(out, "s "+id)
	}
	for _, fp := range a.GetCertFingerprints() {
		out = append(out, "c "+fp)
	}
	return out
}

// TestAgentIndexMatchesScan applies random sequences of agent creates,
// updates, upserts and deletes, and snapshot restores, to one state. After
// every step the agent identifier index must equal a full scan of the
// agents, and every write must have been accepted or refused exactly as
// the scan of every agent decides: refused, naming the first conflicting
// agent in name order, when another agent carries one of its identifiers.
func TestAgentIndexMatchesScan(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	keys := []string{"key00001", "key00002", "key00003", "key00004", "key00005"}
	spiffe := []string{"spiffe://td/a", "spiffe://td/b", "spiffe://td/c"}
	certs := []string{"sha256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("b", 64), "sha256:" + strings.Repeat("c", 64)}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 14))
		some := func(pool []string) []string {
			var out []string
			for _, v := range pool {
				if rng.IntN(len(pool)+1) == 0 {
					out = append(out, v)
				}
			}
			return out
		}
		s := bootstrapped(t)
		for step := range 150 {
			name := names[rng.IntN(len(names))]
			a := &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}, Team: "t", SpiffeIds: some(spiffe), CertFingerprints: some(certs)}
			for _, k := range some(keys) {
				a.ApiKeys = append(a.ApiKeys, &configv1.ApiKey{Id: k, Sha256: statetest.Digest(k), CreateTime: statetest.At(0)})
			}
			_, exists := s.Get(resource.Agent, name)
			var cmd *fsmv1.Command
			op := rng.IntN(6)
			switch op {
			case 0, 1:
				cmd = statetest.Create(a)
			case 2:
				cmd = statetest.Update(a)
			case 3:
				cmd = statetest.Upsert(a)
			case 4:
				cmd = statetest.Delete(resource.Agent, name)
			default:
				var buf bytes.Buffer
				if _, err := s.WriteTo(&buf); err != nil {
					t.Fatal(err)
				}
				restored, err := state.Read(&buf)
				if err != nil {
					t.Fatal(err)
				}
				s = restored
			}
			if cmd != nil {
				want := ""
				switch {
				case op == 4 && !exists:
					want = "NOT_FOUND"
				case op == 4:
				case op <= 1 && exists:
					want = "ALREADY_EXISTS"
				case op == 2 && !exists:
					want = "NOT_FOUND"
				default:
					if msg := scanConflict(s, a); msg != "" {
						want = "FAILED_PRECONDITION: " + msg
					}
				}
				next, res := state.Apply(s, s.Index()+1, statetest.By(cmd, statetest.BootToken, "", 10))
				got := ""
				if e := res.GetError(); e != nil {
					got = strings.TrimPrefix(e.GetCode().String(), "ERROR_CODE_")
					if e.GetCode() == fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION {
						got += ": " + e.GetMessage()
					}
				}
				if got != want {
					t.Fatalf("seed %d step %d: %s %s: got %q, want %q", seed, step, cmd.GetMethod(), name, got, want)
				}
				s = next
			}
			if got, want := state.AgentIndex(s), scanIndex(s); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d (op %d on %s): index\n%v\nwant (scan)\n%v", seed, step, op, name, got, want)
			}
		}
	}
}
