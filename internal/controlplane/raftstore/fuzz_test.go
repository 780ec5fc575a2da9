package raftstore_test

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeCommand feeds DecodeCommand arbitrary log entries, seeded with
// real commands of every operation. It must never panic, and a command it
// accepts must be safe to apply: state.Apply may refuse it, never panic,
// both on the empty state and on a state holding every kind of resource
// and an enabled policy set (so pins are checked against policies).
func FuzzDecodeCommand(f *testing.F) {
	steps := statetest.Script()
	populated := statetest.Run(f, state.New(), 1, steps[:12])
	for _, st := range steps {
		b, err := proto.Marshal(st.Cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A command that decodes but whose oneof holds an empty message, and
	// one with an unknown field.
	empty, _ := proto.Marshal(&fsmv1.Command{Op: &fsmv1.Command_Put{Put: &fsmv1.Put{}}})
	f.Add(empty)
	f.Add(protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), empty...), 99, protowire.VarintType), 1))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := raftstore.DecodeCommand(data)
		if err != nil {
			if cmd != nil {
				t.Fatalf("DecodeCommand returned a command with error %v", err)
			}
			return
		}
		if cmd.GetOp() == nil {
			t.Fatal("DecodeCommand accepted a command without an operation")
		}
		for _, s := range []*state.State{state.New(), populated} {
			next, res := state.Apply(s, s.Index()+1, cmd)
			if res == nil || next == nil {
				t.Fatalf("Apply returned state %v, result %v", next, res)
			}
			if res.GetError() == nil {
				continue
			}
			before, after := statetest.Resources(s), statetest.Resources(next)
			if len(before) != len(after) {
				t.Fatalf("a refused command changed the number of resources from %d to %d", len(before), len(after))
			}
			for i := range before {
				if !proto.Equal(before[i], after[i]) {
					t.Fatalf("a refused command changed %v into %v", before[i], after[i])
				}
			}
		}
	})
}
