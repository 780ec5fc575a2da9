package raftstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// applyRecover applies one entry and returns what the state machine
// panicked with ("" when it did not stop).
func applyRecover(f *raftstore.FSM, l *raft.Log) (stopped string) {
	defer func() {
		if r := recover(); r != nil {
			stopped = fmt.Sprint(r)
		}
	}()
	f.Apply(l)
	return ""
}

func bytesField(num protowire.Number, payload []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), payload)
}

// TestApplyStopsOnWhatANewerVersionWrote: an entry this binary cannot
// apply in full (an operation or a resource kind it does not know, a
// cluster version above its own) stops the replica with an error that
// says which entry and what to do, instead of skipping or refusing it
// while the replicas that know it apply it. Fields a newer version added
// elsewhere (the command envelope, a resource's own fields) do not.
func TestApplyStopsOnWhatANewerVersionWrote(t *testing.T) {
	put := encode(t, statetest.By(statetest.Create(statetest.Agent("a", "")), statetest.BootToken, "r-a", 1))
	agentBytes, err := proto.Marshal(statetest.Agent("b", ""))
	if err != nil {
		t.Fatal(err)
	}
	stamped := statetest.By(statetest.Create(statetest.Agent("c", "")), statetest.BootToken, "r-c", 1)
	stamped.ClusterVersion = uint32(clusterversion.Current() + 1)
	probe := statetest.By(statetest.Upsert(&fsmv1.UpgradeProbe{Meta: statetest.Meta("p")}), statetest.BootToken, "r-p", 1)

	type entry struct {
		name string
		data []byte
		stop string // "" when the entry must apply
	}
	tests := []entry{
		{name: "a known command", data: put},
		{name: "a known command with a new envelope field", data: append(bytes.Clone(put), bytesField(60, []byte("trace"))...)},
		{name: "a resource with a new field", data: encode(t, statetest.By(statetest.Create(func() proto.Message {
			b := append(bytes.Clone(agentBytes), protowire.AppendVarint(protowire.AppendTag(nil, 900, protowire.VarintType), 1)...)
			m := statetest.Agent("", "")
			if err := proto.Unmarshal(b, m); err != nil {
				t.Fatal(err)
			}
			return m
		}()), statetest.BootToken, "r-b", 1))},
		{name: "an operation of a newer version", data: append(bytesField(1, []byte("r-new")), bytesField(17, []byte{0x08, 0x01})...),
			stop: "an operation this binary does not know (field 17)"},
		{name: "a resource kind of a newer version", data: bytesField(10, bytesField(1, bytesField(200, agentBytes))),
			stop: "a resource kind this binary does not know (field 200)"},
		{name: "a command stamped with a newer version", data: encode(t, stamped), stop: "needs cluster version"},
		{name: "an entry that does not decode", data: []byte{0xff, 0xff}, stop: "decode command"},
	}
	if clusterversion.Current() == clusterversion.Release() {
		tests = append(tests, entry{name: "the test-only kind in a release build", data: encode(t, probe), stop: "resource kind upgrade_probe is not supported"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := raftstore.NewFSM(nil)
			if s := applyRecover(f, &raft.Log{Index: 1, Data: encode(t, statetest.Bootstrap())}); s != "" {
				t.Fatalf("bootstrap stopped the state machine: %s", s)
			}
			before := f.State()
			stopped := applyRecover(f, &raft.Log{Index: 2, Data: tt.data})
			if tt.stop == "" {
				if stopped != "" {
					t.Fatalf("the state machine stopped: %s", stopped)
				}
				if f.State().Index() != 2 {
					t.Fatalf("the entry was not applied (index %d)", f.State().Index())
				}
				return
			}
			wants := []string{"committed log entry 2", "stops rather than diverge", tt.stop}
			if tt.name != "an entry that does not decode" {
				wants = append(wants, "a newer Portcullis version wrote it: upgrade this node's binary")
			}
			for _, want := range wants {
				if !strings.Contains(stopped, want) {
					t.Errorf("stopped with %q, which does not say %q", stopped, want)
				}
			}
			if f.State() != before {
				t.Error("the state changed although the state machine stopped")
			}
		})
	}
}

// TestRestoreStopsOnANewerSnapshot: a snapshot written by a newer version
// (its container's magic, or the state stream's format) stops the replica
// with an error saying so, like an entry it cannot apply, instead of
// leaving it behind the others for good; a corrupt one is an error Raft
// handles (it tries an older snapshot).
func TestRestoreStopsOnANewerSnapshot(t *testing.T) {
	newerState := []byte{0x02, 0x08, 0x02} // SnapshotHeader{format: 2}
	tests := []struct {
		name, in, stop string
	}{
		{name: "a newer container", in: "PCFSM003\x00\x00\x00\x00\x00\x00\x00\x00", stop: `its container is "PCFSM003"`},
		{name: "a newer state format", in: string(newerState), stop: "its format is 2"},
		{name: "a corrupt stream", in: "\x05garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := raftstore.NewFSM(nil)
			var err error
			stopped := func() (s string) {
				defer func() {
					if r := recover(); r != nil {
						s = fmt.Sprint(r)
					}
				}()
				err = f.Restore(io.NopCloser(strings.NewReader(tt.in)))
				return ""
			}()
			if tt.stop == "" {
				if stopped != "" || err == nil || errors.Is(err, state.ErrTooNew) {
					t.Fatalf("Restore stopped %q, returned %v; want an error, no stop", stopped, err)
				}
				return
			}
			for _, want := range []string{"stops rather than fall behind", tt.stop, "upgrade this node's binary"} {
				if !strings.Contains(stopped, want) {
					t.Errorf("stopped with %q, which does not say %q", stopped, want)
				}
			}
			if _, ok := f.State().Get(resource.Node, "n1"); ok || f.State().Index() != 0 {
				t.Fatal("the refused snapshot changed the state")
			}
		})
	}
}
