package state_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// delimitedRaw is one length-delimited record of raw message bytes.
func delimitedRaw(b []byte) []byte { return protowire.AppendBytes(nil, b) }

// bytesField is a field of wire type bytes holding payload.
func bytesField(num protowire.Number, payload []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), payload)
}

// TestReadRefusesNewerSnapshots: a snapshot written by a newer version (a
// newer format, a resource kind or a record type this binary does not
// know) is refused with ErrTooNew and an error that says to upgrade, not
// read without what this binary does not understand.
func TestReadRefusesNewerSnapshots(t *testing.T) {
	header := func(format uint32) []byte {
		var buf bytes.Buffer
		if _, err := protodelim.MarshalTo(&buf, &fsmv1.SnapshotHeader{Format: format, AppliedIndex: 7}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	agentBytes, err := proto.Marshal(statetest.Agent("a", ""))
	if err != nil {
		t.Fatal(err)
	}
	newKind := bytesField(1, bytesField(200, agentBytes))                           // SnapshotRecord.resource{kind field 200}
	newRecord := bytesField(9, []byte{0x08, 0x01})                                  // SnapshotRecord field 9
	probe := bytesField(1, bytesField(100, bytesField(1, []byte{0x0a, 0x01, 'p'}))) // upgrade_probe{meta{name "p"}}
	type newerCase struct {
		name string
		in   []byte
		says string
	}
	tests := []newerCase{
		{name: "newer format", in: header(2), says: "its format is 2, this binary reads format 1"},
		{name: "a resource kind of a newer version", in: append(header(1), delimitedRaw(newKind)...), says: "resource kind this binary does not know (field 200)"},
		{name: "a record type of a newer version", in: append(header(1), delimitedRaw(newRecord)...), says: "a record this binary does not know (field 9)"},
	}
	if clusterversion.Current() == clusterversion.Release() {
		tests = append(tests, newerCase{name: "the test-only kind in a release build", in: append(header(1), delimitedRaw(probe)...), says: "resource kind upgrade_probe is not supported"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := state.Read(bytes.NewReader(tt.in))
			if !errors.Is(err, state.ErrTooNew) {
				t.Fatalf("Read = %v, %v; want an error wrapping ErrTooNew", s, err)
			}
			for _, want := range []string{tt.says, "upgrade this node's binary"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestNewFieldsAreKeptNotRefused: fields a newer version added to a
// resource or to the command envelope are no reason to refuse or stop:
// this binary applies the command, keeps the fields it does not know with
// the resource, and writes them into its snapshots, so a newer replica
// restored from this one's snapshot loses nothing.
func TestNewFieldsAreKeptNotRefused(t *testing.T) {
	s := statetest.Run(t, state.New(), 1, []statetest.Step{{Name: "bootstrap", Cmd: statetest.Bootstrap()}})

	agentBytes, err := proto.Marshal(statetest.Agent("newer", ""))
	if err != nil {
		t.Fatal(err)
	}
	extra := protowire.AppendVarint(protowire.AppendTag(nil, 900, protowire.VarintType), 42)
	agent := &configv1.Agent{}
	if err := proto.Unmarshal(append(agentBytes, extra...), agent); err != nil {
		t.Fatal(err)
	}
	cmdBytes, err := proto.Marshal(statetest.By(statetest.Create(agent), statetest.BootToken, "r-newer", 5))
	if err != nil {
		t.Fatal(err)
	}
	cmd := &fsmv1.Command{}
	if err := proto.Unmarshal(append(cmdBytes, bytesField(60, []byte("trace"))...), cmd); err != nil {
		t.Fatal(err)
	}

	s, res := state.Apply(s, 2, cmd)
	if res.GetError() != nil {
		t.Fatalf("a command with new fields was refused: %v", res.GetError())
	}
	back := statetest.Restore(t, statetest.Snapshot(t, s))
	r, ok := back.Get(resource.Agent, "newer")
	if !ok {
		t.Fatal("the agent is missing after a snapshot round trip")
	}
	if got := r.GetAgent().ProtoReflect().GetUnknown(); !bytes.Equal(got, extra) {
		t.Errorf("after a snapshot round trip the agent's unknown fields are %x, want %x", got, extra)
	}
}

// TestApplyRefusesWhatItCannotApply: called directly, Apply refuses a
// command that needs more than this binary supports as an unknown command
// (the Raft state machine stops on it before it gets here) and changes
// nothing but the admin log.
func TestApplyRefusesWhatItCannotApply(t *testing.T) {
	s := statetest.Run(t, state.New(), 1, []statetest.Step{{Name: "bootstrap", Cmd: statetest.Bootstrap()}})
	cmd := statetest.By(statetest.Create(statetest.Agent("later", "")), statetest.BootToken, "r-later", 5)
	cmd.ClusterVersion = uint32(clusterversion.Current() + 1)
	next, res := state.Apply(s, 2, cmd)
	if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT || !strings.Contains(res.GetError().GetMessage(), "needs cluster version") {
		t.Fatalf("result %v, want INVALID_ARGUMENT saying which version the command needs", res)
	}
	if _, ok := next.Get(resource.Agent, "later"); ok {
		t.Fatal("the refused command stored its agent")
	}
}

// TestVotersAreTheNodeRecords: the voters the gates count are the node
// records, each at the version it recorded, nothing recorded counting as
// the baseline.
func TestVotersAreTheNodeRecords(t *testing.T) {
	n2 := statetest.Node("n2")
	n2.MaxClusterVersion = 7
	s := statetest.Run(t, state.New(), 1, []statetest.Step{
		{Name: "bootstrap", Cmd: statetest.Bootstrap()},
		{Name: "node n2", Cmd: statetest.Create(n2)},
	})
	got := s.Voters()
	want := []clusterversion.Voter{{ID: "n1", Version: clusterversion.Baseline}, {ID: "n2", Version: 7}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Voters = %v, want %v", got, want)
	}
}
