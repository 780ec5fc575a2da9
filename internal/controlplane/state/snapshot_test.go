package state_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// TestSnapshotRoundTripEveryCommand applies the script command by command.
// After each command the state goes through WriteTo and Read and must come
// back equal and re-serialize to the same bytes; the next command is then
// applied to both the original and the restored state, which must produce
// the same result and stay equal: a replica restored from a snapshot stays
// in lockstep with one that applied the log.
func TestSnapshotRoundTripEveryCommand(t *testing.T) {
	steps := statetest.Script()
	keys := statetest.DedupKeys(steps)
	ops := map[string]bool{}
	kinds := map[string]bool{}

	orig := state.New()
	restored := statetest.Restore(t, statetest.Snapshot(t, orig))
	if d := statetest.Diff(orig, restored, keys); len(d) > 0 {
		t.Fatalf("empty state does not round-trip:\n%s", strings.Join(d, "\n"))
	}
	for i, st := range steps {
		index := uint64(i + 1)
		nextO, resO := state.Apply(orig, index, st.Cmd)
		nextR, resR := state.Apply(restored, index, proto.Clone(st.Cmd).(*fsmv1.Command))
		if err := statetest.CheckResult(st, resO); err != nil {
			t.Fatalf("step %d (%s): %v", index, st.Name, err)
		}
		if !proto.Equal(resO, resR) {
			t.Fatalf("step %d (%s): restored replica's result differs:\n original %v\n restored %v", index, st.Name, resO, resR)
		}
		if d := statetest.Diff(nextO, nextR, keys); len(d) > 0 {
			t.Fatalf("step %d (%s): restored replica diverged:\n%s", index, st.Name, strings.Join(d, "\n"))
		}
		if resO.GetError() == nil && !resO.GetDeduplicated() {
			switch op := st.Cmd.GetOp().(type) {
			case *fsmv1.Command_Put:
				ops["put"] = true
				kinds["put "+string(resource.KindOf(op.Put.GetResource()))] = true
			case *fsmv1.Command_Delete:
				ops["delete"] = true
				kinds["delete "+op.Delete.GetKind()] = true
			case *fsmv1.Command_Bootstrap:
				ops["bootstrap"] = true
			case *fsmv1.Command_Touch:
				ops["touch"] = true
			case *fsmv1.Command_SetFreeze:
				ops["freeze"] = true
			case *fsmv1.Command_RolloutChange:
				ops["rollout_change"] = true
			case *fsmv1.Command_ConsumeAudit:
				// A batch moves its consumer's cursor (and queues alerts):
				// the only way either kind is written.
				ops["consume"] = true
				kinds["put "+string(resource.AuditCursor)] = true
				if len(op.ConsumeAudit.GetAlerts()) > 0 {
					kinds["put "+string(resource.Alert)] = true
				}
				if len(op.ConsumeAudit.GetBudgetUsage()) > 0 && resO.GetError() == nil {
					kinds["put "+string(resource.BudgetUsage)] = true
				}
			case *fsmv1.Command_SettleAlert:
				ops["settle"] = true
			case *fsmv1.Command_ChangeLearned:
				ops["learn"] = true
			}
		}
		// A cursor is never deleted: the script must see the refusal.
		if d := st.Cmd.GetDelete(); d.GetKind() == string(resource.AuditCursor) && resO.GetError().GetCode() == fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION {
			kinds["delete "+d.GetKind()] = true
		}
		if resO.GetError() != nil && !resO.GetDeduplicated() {
			ops["refused"] = true
		}
		if resO.GetDeduplicated() {
			ops["deduplicated"] = true
		}
		// A budget's usage goes with its budget.
		if nextO.Count(resource.BudgetUsage) < orig.Count(resource.BudgetUsage) {
			kinds["delete "+string(resource.BudgetUsage)] = true
		}
		// The state machine alone writes and deletes histories.
		if nextO.Count(resource.PolicyHistory) > orig.Count(resource.PolicyHistory) {
			kinds["put "+string(resource.PolicyHistory)] = true
		}
		if nextO.Count(resource.PolicyHistory) < orig.Count(resource.PolicyHistory) {
			kinds["delete "+string(resource.PolicyHistory)] = true
		}

		snap := statetest.Snapshot(t, nextO)
		back := statetest.Restore(t, snap)
		if d := statetest.Diff(nextO, back, keys); len(d) > 0 {
			t.Fatalf("step %d (%s): state after WriteTo/Read differs:\n%s", index, st.Name, strings.Join(d, "\n"))
		}
		if again := statetest.Snapshot(t, back); !bytes.Equal(snap, again) {
			t.Fatalf("step %d (%s): restored state serializes to %d bytes that differ from the original's %d", index, st.Name, len(again), len(snap))
		}
		orig, restored = nextO, back
	}

	for _, want := range []string{"bootstrap", "put", "delete", "touch", "freeze", "rollout_change", "refused", "deduplicated", "consume", "settle", "learn"} {
		if !ops[want] {
			t.Errorf("the script never exercised %s", want)
		}
	}
	for _, k := range resource.Kinds {
		for _, op := range []string{"put ", "delete "} {
			if !kinds[op+string(k)] {
				t.Errorf("the script never applied %s%s", op, k)
			}
		}
	}
	t.Logf("applied %d commands; final snapshot %d bytes", len(steps), len(statetest.Snapshot(t, orig)))
}

// TestWriteToDeterministic writes one state several times: the stream must
// be the same bytes every time, so that backups and snapshots of equal
// states can be compared and hashed.
func TestWriteToDeterministic(t *testing.T) {
	agent := statetest.Agent("labelled", "")
	agent.Meta.Labels = map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8"}
	s := statetest.Run(t, state.New(), 1, []statetest.Step{
		{Name: "bootstrap", Cmd: statetest.Bootstrap()},
		{Name: "labelled agent", Cmd: statetest.Create(agent)},
	})
	first := statetest.Snapshot(t, s)
	for i := range 20 {
		if got := statetest.Snapshot(t, s); !bytes.Equal(first, got) {
			t.Fatalf("write %d of the same state produced different bytes", i+2)
		}
	}
}

// scriptSnapshot returns the snapshot of the state after the whole script
// minus its last `drop` steps, and the record boundaries of the stream.
func scriptSnapshot(t testing.TB, drop int) (snap []byte, boundaries []int) {
	t.Helper()
	steps := statetest.Script()
	s := statetest.Run(t, state.New(), 1, steps[:len(steps)-drop])
	snap = statetest.Snapshot(t, s)
	r := bytes.NewReader(snap)
	var m proto.Message = &fsmv1.SnapshotHeader{}
	for r.Len() > 0 {
		if err := protodelim.UnmarshalFrom(r, m); err != nil {
			t.Fatalf("split snapshot: %v", err)
		}
		boundaries = append(boundaries, len(snap)-r.Len())
		m = &fsmv1.SnapshotRecord{}
	}
	return snap, boundaries
}

// TestReadTruncatedMidRecord cuts a real snapshot inside its header or
// inside any record: Read must refuse it with ErrCorrupt.
func TestReadTruncatedMidRecord(t *testing.T) {
	snap, boundaries := scriptSnapshot(t, len(statetest.Script())-8)
	atBoundary := map[int]bool{}
	for _, b := range boundaries {
		atBoundary[b] = true
	}
	tested := 0
	for n := 0; n < len(snap); n++ {
		if atBoundary[n] {
			continue // see TestReadTruncatedAtRecordBoundary
		}
		if _, err := state.Read(bytes.NewReader(snap[:n])); !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("Read of the first %d of %d bytes: err = %v, want ErrCorrupt", n, len(snap), err)
		}
		tested++
	}
	t.Logf("%d truncations refused (%d records)", tested, len(boundaries))
}

// TestReadTruncatedAtRecordBoundary cuts a real snapshot between two
// records. A stream that lost its tail (a partial copy of a backup file)
// must not be read as a smaller, valid state.
func TestReadTruncatedAtRecordBoundary(t *testing.T) {
	snap, boundaries := scriptSnapshot(t, len(statetest.Script())-8)
	for _, n := range boundaries[:len(boundaries)-1] {
		if _, err := state.Read(bytes.NewReader(snap[:n])); !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("Read of the first %d of %d bytes (a record boundary): err = %v, want ErrCorrupt", n, len(snap), err)
		}
	}
}

// TestReadCorrupt feeds Read malformed streams.
func TestReadCorrupt(t *testing.T) {
	snap, boundaries := scriptSnapshot(t, 0)
	header := snap[:boundaries[0]]
	delimited := func(m proto.Message) []byte {
		var buf bytes.Buffer
		if _, err := protodelim.MarshalTo(&buf, m); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flipped := bytes.Clone(snap)
	flipped[boundaries[0]+1] ^= 0xff

	tests := []struct {
		name string
		in   []byte
	}{
		{name: "empty", in: nil},
		{name: "garbage", in: []byte("this is not a snapshot at all")},
		{name: "format zero", in: delimited(&fsmv1.SnapshotHeader{})},
		{name: "length prefix beyond the limit", in: cat(header, []byte{0xff, 0xff, 0xff, 0xff, 0x0f})},
		{name: "length prefix beyond the data", in: cat(header, []byte{0x80, 0x01}, []byte("short"))},
		{name: "unterminated varint", in: cat(header, []byte{0xff})},
		{name: "empty record", in: cat(header, []byte{0x00})},
		{name: "resource without kind", in: cat(header, delimited(&fsmv1.SnapshotRecord{Record: &fsmv1.SnapshotRecord_Resource{Resource: &fsmv1.Resource{}}}))},
		{name: "resource without meta", in: cat(header, delimited(&fsmv1.SnapshotRecord{Record: &fsmv1.SnapshotRecord_Resource{Resource: resource.Wrap(&configv1.Agent{Team: "x"})}}))},
		{name: "flipped byte", in: flipped},
		{name: "invalid wire type", in: cat(header, []byte{0x02, 0x0f, 0x00})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := state.Read(bytes.NewReader(tt.in))
			if !errors.Is(err, state.ErrCorrupt) {
				t.Fatalf("Read = %v, %v; want an error wrapping ErrCorrupt", s, err)
			}
			t.Log(err)
		})
	}
}

// FuzzRead feeds Read arbitrary streams, seeded with real snapshots: it must
// never panic, must refuse with ErrCorrupt (or ErrTooNew, for what reads as
// a newer version's snapshot), and whatever it accepts must
// serialize again and read back to an equal state.
func FuzzRead(f *testing.F) {
	// Small seeds keep the fuzzer's minimization of new inputs fast; the
	// whole script's snapshot is about 8 KB.
	n := len(statetest.Script())
	for _, drop := range []int{n - 1, n - 3, n - 8} {
		snap, _ := scriptSnapshot(f, drop)
		f.Add(snap)
	}
	f.Add([]byte{})
	f.Add([]byte{0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := state.Read(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, state.ErrCorrupt) && !errors.Is(err, state.ErrTooNew) {
				t.Fatalf("Read error %v wraps neither ErrCorrupt nor ErrTooNew", err)
			}
			return
		}
		var buf bytes.Buffer
		if _, err := s.WriteTo(&buf); err != nil {
			t.Fatalf("WriteTo of an accepted snapshot: %v", err)
		}
		back, err := state.Read(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("Read of a re-written snapshot: %v", err)
		}
		if d := statetest.Diff(s, back, nil); len(d) > 0 {
			t.Fatalf("accepted snapshot does not round-trip:\n%s", strings.Join(d, "\n"))
		}
		// A restored state must accept commands.
		state.Apply(s, s.Index()+1, statetest.Touch())
	})
}

// TestEpochs: a state starts in epoch 1 (also one read from a stream
// written before epochs, whose header has none); WithNextEpoch follows both
// its own epoch and the one it replaces; the epoch survives WriteTo/Read
// and every later command, and a command never changes it.
func TestEpochs(t *testing.T) {
	s := statetest.Run(t, state.New(), 1, []statetest.Step{{Name: "bootstrap", Cmd: statetest.Bootstrap()}})
	if s.Epoch() != 1 {
		t.Fatalf("a new cluster is in epoch %d, want 1", s.Epoch())
	}
	old := statetest.Snapshot(t, s)
	hdr := &fsmv1.SnapshotHeader{}
	if err := protodelim.UnmarshalFrom(bytes.NewReader(old), hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.GetEpoch() != 0 {
		t.Fatalf("epoch 1 is written as %d; a state that never changed epoch must write the header as before epochs", hdr.GetEpoch())
	}
	if got := statetest.Restore(t, old).Epoch(); got != 1 {
		t.Fatalf("a stream without an epoch reads as epoch %d, want 1", got)
	}
	tests := []struct {
		name  string
		from  uint64 // the state's epoch before
		after uint64 // the epoch it replaces
		want  uint64
	}{
		{name: "restore in the first epoch", from: 1, after: 1, want: 2},
		{name: "older backup into a later epoch", from: 1, after: 5, want: 6},
		{name: "newer backup than the cluster", from: 7, after: 3, want: 8},
		{name: "nothing replaced", from: 1, after: 0, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := s
			for base.Epoch() < tt.from {
				base = base.WithNextEpoch(0)
			}
			next := base.WithNextEpoch(tt.after)
			if next.Epoch() != tt.want {
				t.Fatalf("epoch %d after %d: got %d, want %d", tt.from, tt.after, next.Epoch(), tt.want)
			}
			if base.Epoch() != tt.from {
				t.Fatalf("WithNextEpoch changed the state it was called on (epoch %d)", base.Epoch())
			}
			back := statetest.Restore(t, statetest.Snapshot(t, next))
			if back.Epoch() != tt.want {
				t.Fatalf("epoch %d after WriteTo/Read, want %d", back.Epoch(), tt.want)
			}
			applied, res := state.Apply(back, back.Index()+1, statetest.Create(statetest.Agent("after-restore", "")))
			if res.GetError() != nil {
				t.Fatal(res.GetError())
			}
			if applied.Epoch() != tt.want || applied.ConfigVersion() != back.Index()+1 {
				t.Fatalf("after a write: epoch %d, config version %d; want %d, %d", applied.Epoch(), applied.ConfigVersion(), tt.want, back.Index()+1)
			}
		})
	}
}
