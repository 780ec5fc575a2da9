//go:build upgradetest

package state_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

func probePut(name string, sec int64) *fsmv1.Command {
	c := statetest.By(statetest.Upsert(&fsmv1.UpgradeProbe{Meta: statetest.Meta(name), Note: "written at " + name}), statetest.BootToken, "r-"+name, sec)
	c.ClusterVersion = uint32(clusterversion.Current())
	return c
}

func nodeAt(name string, v clusterversion.Version) *configv1.Node {
	n := statetest.Node(name)
	n.MaxClusterVersion = uint32(v)
	return n
}

// TestApplyGatesOnRecordedVoters (test build: the probe kind needs one
// version above the release): Apply refuses a write of the probe kind,
// deterministically and naming the voters behind, until every node record
// supports its version; then it applies it, and the probe survives a
// snapshot round trip with a restored replica in lockstep.
func TestApplyGatesOnRecordedVoters(t *testing.T) {
	v := clusterversion.Current()
	fail := fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
	steps := []statetest.Step{
		{Name: "bootstrap (n1 records nothing)", Cmd: statetest.Bootstrap(), ConfigMoves: true},
		{Name: "n2 joins at the new version", Cmd: statetest.By(statetest.Create(nodeAt("n2", v)), statetest.BootToken, "r-n2", 1)},
		{Name: "probe refused: n1 is behind", Cmd: probePut("p1", 2), WantCode: fail},
		{Name: "n1 records the new version", Cmd: statetest.By(statetest.Update(nodeAt("n1", v)), statetest.BootToken, "r-n1", 3)},
		{Name: "n3 joins without a version", Cmd: statetest.By(statetest.Create(statetest.Node("n3")), statetest.BootToken, "r-n3", 4)},
		{Name: "probe refused: n3 is behind", Cmd: probePut("p2", 5), WantCode: fail},
		{Name: "n3 records the new version", Cmd: statetest.By(statetest.Update(nodeAt("n3", v)), statetest.BootToken, "r-n3v", 6)},
		{Name: "probe applied", Cmd: probePut("p3", 7)},
	}
	keys := statetest.DedupKeys(steps)
	s := state.New()
	restored := state.New()
	for i, st := range steps {
		index := uint64(i + 1)
		next, res := state.Apply(s, index, st.Cmd)
		if err := statetest.CheckResult(st, res); err != nil {
			t.Fatalf("step %d (%s): %v", index, st.Name, err)
		}
		switch st.Name {
		case "probe refused: n1 is behind", "probe refused: n3 is behind":
			behind := strings.Fields(st.Name)[2]
			msg := res.GetError().GetMessage()
			for _, want := range []string{"kind upgrade_probe needs cluster version", behind + " (supports 1)"} {
				if !strings.Contains(msg, want) {
					t.Errorf("step %d (%s): refusal %q does not say %q", index, st.Name, msg, want)
				}
			}
			if strings.Count(msg, "(supports") != 1 {
				t.Errorf("step %d (%s): refusal %q names other voters than %s", index, st.Name, msg, behind)
			}
		}
		nextR, resR := state.Apply(restored, index, proto.Clone(st.Cmd).(*fsmv1.Command))
		if !proto.Equal(res, resR) {
			t.Fatalf("step %d (%s): restored replica's result differs: %v vs %v", index, st.Name, res, resR)
		}
		s, restored = next, statetest.Restore(t, statetest.Snapshot(t, nextR))
		if d := statetest.Diff(s, restored, keys); len(d) > 0 {
			t.Fatalf("step %d (%s): restored replica diverged:\n%s", index, st.Name, strings.Join(d, "\n"))
		}
	}
	for _, st := range []*state.State{s, restored} {
		if _, ok := st.Get(resource.UpgradeProbe, "p1"); ok {
			t.Error("the refused probe p1 was stored")
		}
		if r, ok := st.Get(resource.UpgradeProbe, "p3"); !ok || r.GetUpgradeProbe().GetNote() != "written at p3" {
			t.Errorf("probe p3 = %v, %t; want it stored", r, ok)
		}
	}
}
