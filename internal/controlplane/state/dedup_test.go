package state_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// bootstrapped returns a bootstrapped state at index 1.
func bootstrapped(t testing.TB) *state.State {
	t.Helper()
	return statetest.Run(t, state.New(), 1, []statetest.Step{{Name: "bootstrap", Cmd: statetest.Bootstrap()}})
}

// sameContent reports how two states differ in what a retry must not
// change: resources, config version and time, identity and admin log.
func sameContent(a, b *state.State) []string {
	var out []string
	for _, d := range statetest.Diff(a, b, nil) {
		if !strings.HasPrefix(d, "Index:") {
			out = append(out, d)
		}
	}
	return out
}

func TestDedup(t *testing.T) {
	const token, other = "1111111111111111", "2222222222222222"
	create := func(tok, req string, sec int64) *fsmv1.Command {
		return statetest.By(statetest.Create(statetest.Agent("bot", "")), tok, req, sec)
	}
	tests := []struct {
		name      string
		first     *fsmv1.Command
		retry     *fsmv1.Command
		wantDedup bool
		// wantCode is the retry's error code.
		wantCode fsmv1.ErrorCode
	}{
		{name: "same token and request id", first: create(token, "req-1", 0), retry: create(token, "req-1", 5), wantDedup: true},
		{name: "same request id, another command body", first: create(token, "req-1", 0), retry: statetest.By(statetest.Touch(), token, "req-1", 5), wantDedup: true},
		{name: "other token, same request id", first: create(token, "req-1", 0), retry: create(other, "req-1", 5), wantCode: fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS},
		{name: "same token, other request id", first: create(token, "req-1", 0), retry: create(token, "req-2", 5), wantCode: fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS},
		{name: "no request id is never deduplicated", first: create(token, "", 0), retry: create(token, "", 5), wantCode: fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS},
		{name: "retry at the window's edge", first: create(token, "req-1", 0), retry: create(token, "req-1", state.DedupWindowSeconds), wantDedup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s0 := bootstrapped(t)
			s1, first := state.Apply(s0, 10, tt.first)
			if first.GetError() != nil {
				t.Fatalf("first apply refused: %v", first.GetError())
			}
			s2, retry := state.Apply(s1, 20, tt.retry)
			if retry.GetDeduplicated() != tt.wantDedup {
				t.Fatalf("Deduplicated = %v, want %v (result %v)", retry.GetDeduplicated(), tt.wantDedup, retry)
			}
			if got := retry.GetError().GetCode(); got != tt.wantCode {
				t.Fatalf("retry error = %v, want %v", retry.GetError(), tt.wantCode)
			}
			if s2.Index() != 20 {
				t.Errorf("Index after retry = %d, want 20", s2.Index())
			}
			if !tt.wantDedup {
				return
			}
			if retry.GetIndex() != 10 {
				t.Errorf("retry result index = %d, want the original's 10", retry.GetIndex())
			}
			want := proto.Clone(first).(*fsmv1.Result)
			want.Deduplicated = true
			if !proto.Equal(retry, want) {
				t.Errorf("retry result = %v, want the original %v", retry, want)
			}
			if d := sameContent(s1, s2); len(d) > 0 {
				t.Errorf("a deduplicated retry changed the state:\n%s", strings.Join(d, "\n"))
			}
			if r, _ := s2.Get(resource.Agent, "bot"); resource.Meta(r).GetRevision() != 10 {
				t.Errorf("agent revision = %d after the retry, want 10", resource.Meta(r).GetRevision())
			}
		})
	}
}

// TestDedupRefusalIsRemembered: a retry of a refused command answers with
// the same refusal, even when the command would now succeed.
func TestDedupRefusalIsRemembered(t *testing.T) {
	const token = "1111111111111111"
	s := bootstrapped(t)
	del := statetest.By(statetest.Delete(resource.Agent, "bot"), token, "req-del", 1)
	s, first := state.Apply(s, 2, del)
	if first.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("delete of a missing agent = %v, want NOT_FOUND", first.GetError())
	}
	s, _ = state.Apply(s, 3, statetest.By(statetest.Create(statetest.Agent("bot", "")), token, "req-create", 2))
	s, retry := state.Apply(s, 4, statetest.By(statetest.Delete(resource.Agent, "bot"), token, "req-del", 3))
	if !retry.GetDeduplicated() || retry.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND || retry.GetIndex() != 2 {
		t.Fatalf("retry = %v, want the remembered NOT_FOUND at index 2", retry)
	}
	if _, ok := s.Get(resource.Agent, "bot"); !ok {
		t.Fatal("the deduplicated delete removed the agent")
	}
}

// TestDedupResultIsACopy: changing a replayed result must not change what
// the state remembers.
func TestDedupResultIsACopy(t *testing.T) {
	const token = "1111111111111111"
	s := bootstrapped(t)
	cmd := func(sec int64) *fsmv1.Command {
		return statetest.By(statetest.Create(statetest.Agent("bot", "")), token, "req-1", sec)
	}
	s, _ = state.Apply(s, 2, cmd(1))
	s, r1 := state.Apply(s, 3, cmd(2))
	r1.GetResource().GetAgent().Team = "tampered"
	r1.Index = 99
	_, r2 := state.Apply(s, 4, cmd(3))
	if r2.GetResource().GetAgent().GetTeam() != "payments" || r2.GetIndex() != 2 {
		t.Fatalf("second replay = %v: a caller's change to the first replay leaked into the dedup table", r2)
	}
}

func TestDedupWindowPrunes(t *testing.T) {
	const token = "1111111111111111"
	tests := []struct {
		name string
		// laterSec is the time of a later command with another request id.
		laterSec int64
		wantKept bool
	}{
		{name: "within the window", laterSec: 10, wantKept: true},
		{name: "at the window's edge", laterSec: state.DedupWindowSeconds, wantKept: true},
		{name: "one second past the window", laterSec: state.DedupWindowSeconds + 1},
		{name: "long after", laterSec: 100 * state.DedupWindowSeconds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := bootstrapped(t)
			s, _ = state.Apply(s, 2, statetest.By(statetest.Touch(), token, "old", 0))
			s, _ = state.Apply(s, 3, statetest.By(statetest.Touch(), token, "new", tt.laterSec))
			if _, ok := s.Dedup(token, "old"); ok != tt.wantKept {
				t.Fatalf("Dedup(old) present = %v, want %v", ok, tt.wantKept)
			}
			if _, ok := s.Dedup(token, "new"); !ok {
				t.Fatal("the newest entry was pruned")
			}
			restored := statetest.Restore(t, statetest.Snapshot(t, s))
			if _, ok := restored.Dedup(token, "old"); ok != tt.wantKept {
				t.Fatalf("after restore, Dedup(old) present = %v, want %v", ok, tt.wantKept)
			}
			// The retry of "old" is deduplicated exactly when it is kept.
			_, res := state.Apply(s, 4, statetest.By(statetest.Touch(), token, "old", tt.laterSec))
			if res.GetDeduplicated() != tt.wantKept {
				t.Fatalf("retry of old: Deduplicated = %v, want %v", res.GetDeduplicated(), tt.wantKept)
			}
		})
	}
}

// TestDedupWindowExpiresWithoutOtherTraffic retries a request id after the
// window with no other request in between: the id is no longer remembered
// (DedupWindowSeconds: "how long a request id is remembered"), so the retry
// must be applied afresh, as it is when other traffic pruned the entry.
func TestDedupWindowExpiresWithoutOtherTraffic(t *testing.T) {
	const token = "1111111111111111"
	s := bootstrapped(t)
	s, _ = state.Apply(s, 2, statetest.By(statetest.Touch(), token, "old", 0))
	_, res := state.Apply(s, 3, statetest.By(statetest.Touch(), token, "old", state.DedupWindowSeconds+1))
	if res.GetDeduplicated() {
		t.Fatalf("a retry %ds after the original was deduplicated: %v", state.DedupWindowSeconds+1, res)
	}
}

// countRecords counts the dedup and admin event records of a snapshot.
func countRecords(t *testing.T, snap []byte) (dedup, events int) {
	t.Helper()
	r := bytes.NewReader(snap)
	if err := protodelim.UnmarshalFrom(r, &fsmv1.SnapshotHeader{}); err != nil {
		t.Fatal(err)
	}
	for r.Len() > 0 {
		rec := &fsmv1.SnapshotRecord{}
		if err := protodelim.UnmarshalFrom(r, rec); err != nil {
			t.Fatal(err)
		}
		switch rec.GetRecord().(type) {
		case *fsmv1.SnapshotRecord_Dedup:
			dedup++
		case *fsmv1.SnapshotRecord_AdminEvent:
			events++
		}
	}
	return dedup, events
}

// TestRetentionBounds applies MaxDedup+10 touches with distinct request ids
// at one instant (so only the count bound can prune) and checks that the
// dedup table and the admin log keep exactly their newest entries.
func TestRetentionBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("applies 50,010 commands (about 3s, 8s with -race)")
	}
	const token = "1111111111111111"
	const n = state.MaxDedup + 10
	s := state.New()
	for i := range n {
		s, _ = state.Apply(s, uint64(i+1), statetest.By(statetest.Touch(), token, fmt.Sprint("r", i), 0))
	}
	t.Run("dedup", func(t *testing.T) {
		for i := range n {
			_, ok := s.Dedup(token, fmt.Sprint("r", i))
			if want := i >= n-state.MaxDedup; ok != want {
				t.Fatalf("Dedup(r%d) present = %v, want %v", i, ok, want)
			}
		}
		dedup, _ := countRecords(t, statetest.Snapshot(t, s))
		if dedup != state.MaxDedup {
			t.Fatalf("snapshot holds %d dedup entries, want %d", dedup, state.MaxDedup)
		}
	})
	t.Run("admin events", func(t *testing.T) {
		all, next := s.AdminEvents(0, state.MaxAdminEvents+100)
		if len(all) != state.MaxAdminEvents || next != 0 {
			t.Fatalf("AdminEvents = %d events (next %d), want %d", len(all), next, state.MaxAdminEvents)
		}
		if newest, oldest := all[0].GetIndex(), all[len(all)-1].GetIndex(); newest != n || oldest != n-state.MaxAdminEvents+1 {
			t.Fatalf("events span indexes %d..%d, want %d..%d", oldest, newest, n-state.MaxAdminEvents+1, n)
		}
		_, events := countRecords(t, statetest.Snapshot(t, s))
		if events != state.MaxAdminEvents {
			t.Fatalf("snapshot holds %d admin events, want %d", events, state.MaxAdminEvents)
		}
	})
}
