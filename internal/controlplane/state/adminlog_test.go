package state_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// wantEvent is the admin event a command must leave, without the error
// fields.
func wantEvent(index uint64, cmd *fsmv1.Command) *configv1.AdminEvent {
	ev := &configv1.AdminEvent{
		Index:     index,
		Time:      cmd.GetTime(),
		Actor:     cmd.GetActor(),
		Method:    cmd.GetMethod(),
		RequestId: cmd.GetRequestId(),
	}
	switch op := cmd.GetOp().(type) {
	case *fsmv1.Command_Put:
		ev.Op, ev.Kind, ev.Name = "put", string(resource.KindOf(op.Put.GetResource())), resource.Name(op.Put.GetResource())
	case *fsmv1.Command_Delete:
		ev.Op, ev.Kind, ev.Name = "delete", op.Delete.GetKind(), op.Delete.GetName()
	case *fsmv1.Command_Bootstrap:
		ev.Op, ev.Kind, ev.Name = "bootstrap", "cluster", op.Bootstrap.GetIdentity().GetClusterId()
	case *fsmv1.Command_Touch:
		ev.Op = "touch"
	case *fsmv1.Command_SetFreeze:
		ev.Op, ev.Kind, ev.Name = "freeze", "cluster", fmt.Sprint(op.SetFreeze.GetFrozen())
	case *fsmv1.Command_ChangeLearned:
		ev.Op, ev.Kind, ev.Name = "learn", string(resource.ListLearning), op.ChangeLearned.GetChanges()[0].GetList()
	case *fsmv1.Command_SignIn:
		ev.Op, ev.Kind, ev.Name = "sign-in", "session", cmd.GetActor().GetTokenId()
		if _, err := netip.ParseAddr(op.SignIn.GetSourceIp()); err == nil {
			ev.SourceIp = op.SignIn.GetSourceIp()
		}
	case *fsmv1.Command_RolloutChange:
		ev.Op = "rollout_" + strings.ToLower(strings.TrimPrefix(op.RolloutChange.GetAction().String(), "ROLLOUT_ACTION_"))
		ev.Kind, ev.Name = "rollout", op.RolloutChange.GetRollout()
	default:
		ev.Op = "unknown"
	}
	return ev
}

// TestAdminEventsRecordEveryCommand: every applied command, accepted or
// refused, adds exactly one event saying who did what and how it ended; a
// deduplicated retry adds none, and neither does the leader's own work
// (audit consumers' batches, alert deliveries), which is no admin write.
func TestAdminEventsRecordEveryCommand(t *testing.T) {
	steps := append(statetest.Script(), statetest.Step{
		Name: "command without an operation", Cmd: statetest.By(&fsmv1.Command{Method: "Test.Nothing"}, "1111111111111111", "r-none", 40),
		WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
	})
	s := state.New()
	for i, st := range steps {
		index := uint64(i + 1)
		before, _ := s.AdminEvents(0, state.MaxAdminEvents)
		var res *fsmv1.Result
		s, res = state.Apply(s, index, st.Cmd)
		if err := statetest.CheckResult(st, res); err != nil {
			t.Fatalf("step %d (%s): %v", index, st.Name, err)
		}
		after, _ := s.AdminEvents(0, state.MaxAdminEvents)
		if st.WantDedup || statetest.LeaderWork(st.Cmd) {
			if len(after) != len(before) {
				t.Fatalf("step %d (%s): added %d events, want none", index, st.Name, len(after)-len(before))
			}
			continue
		}
		if len(after) != len(before)+1 {
			t.Fatalf("step %d (%s): %d events added, want 1", index, st.Name, len(after)-len(before))
		}
		got := proto.Clone(after[0]).(*configv1.AdminEvent)
		code, msg, detail := got.GetErrorCode(), got.GetErrorMessage(), got.GetDetail()
		got.ErrorCode, got.ErrorMessage, got.Detail = "", "", ""
		// A rollout's start and changes say what they did.
		if got.GetKind() == string(resource.Rollout) && got.GetOp() != "delete" && code == "" && detail == "" {
			t.Fatalf("step %d (%s): the rollout write's event has no detail", index, st.Name)
		}
		if want := wantEvent(index, st.Cmd); !proto.Equal(got, want) {
			t.Fatalf("step %d (%s): event\n got  %v\n want %v", index, st.Name, got, want)
		}
		if st.WantCode == fsmv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			if code != "" || msg != "" {
				t.Fatalf("step %d (%s): accepted command logged error %q %q", index, st.Name, code, msg)
			}
			continue
		}
		name := strings.TrimPrefix(st.WantCode.String(), "ERROR_CODE_")
		if !strings.HasSuffix(code, name) || msg != res.GetError().GetMessage() {
			t.Fatalf("step %d (%s): refusal logged as %q %q, want code %s and message %q", index, st.Name, code, msg, name, res.GetError().GetMessage())
		}
	}
}

// TestAdminEventErrorCodeFormat checks the refusal code against the
// documented form (config/v1/events.proto: `"ALREADY_EXISTS", ...`), which
// is also what the gwctl fake in internal/gwctl/gwctltest records.
func TestAdminEventErrorCodeFormat(t *testing.T) {
	s := bootstrapped(t)
	s, _ = state.Apply(s, 2, statetest.Create(statetest.Agent("bot", "")))
	s, _ = state.Apply(s, 3, statetest.Create(statetest.Agent("bot", "")))
	ev, _ := s.AdminEvents(0, 1)
	if got := ev[0].GetErrorCode(); got != "ALREADY_EXISTS" {
		t.Fatalf("error_code = %q, want %q", got, "ALREADY_EXISTS")
	}
}

func TestAdminEventsPaging(t *testing.T) {
	s := statetest.Run(t, state.New(), 1, statetest.Script())
	all, next := s.AdminEvents(0, state.MaxAdminEvents)
	if next != 0 {
		t.Fatalf("one page of everything has next = %d", next)
	}
	dedups := 0
	for _, st := range statetest.Script() {
		if st.WantDedup || statetest.LeaderWork(st.Cmd) {
			dedups++
		}
	}
	if want := len(statetest.Script()) - dedups; len(all) != want {
		t.Fatalf("%d events, want %d", len(all), want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].GetIndex() >= all[i-1].GetIndex() {
			t.Fatalf("events not newest first: index %d after %d", all[i].GetIndex(), all[i-1].GetIndex())
		}
	}
	tests := []struct {
		name string
		size int
	}{
		{name: "one per page", size: 1},
		{name: "three per page", size: 3},
		{name: "page size divides the count", size: len(all) / 2},
		{name: "exactly all", size: len(all)},
		{name: "larger than all", size: len(all) + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []*configv1.AdminEvent
			var before uint64
			for pages := 0; ; pages++ {
				if pages > len(all)+1 {
					t.Fatal("paging does not end")
				}
				page, next := s.AdminEvents(before, tt.size)
				if len(page) > tt.size {
					t.Fatalf("page of %d events, limit %d", len(page), tt.size)
				}
				if next != 0 && len(page) == 0 {
					t.Fatal("empty page with a next token")
				}
				got = append(got, page...)
				if next == 0 {
					break
				}
				before = next
			}
			if len(got) != len(all) {
				t.Fatalf("paged through %d events, want %d", len(got), len(all))
			}
			for i := range got {
				if !proto.Equal(got[i], all[i]) {
					t.Fatalf("event %d: paged %v, want %v", i, got[i], all[i])
				}
			}
		})
	}
	t.Run("before an index", func(t *testing.T) {
		mid := all[len(all)/2].GetIndex()
		page, _ := s.AdminEvents(mid, state.MaxAdminEvents)
		for _, ev := range page {
			if ev.GetIndex() >= mid {
				t.Fatalf("AdminEvents(before %d) returned index %d", mid, ev.GetIndex())
			}
		}
		if len(page) == 0 || page[0].GetIndex() != all[len(all)/2+1].GetIndex() {
			t.Fatalf("AdminEvents(before %d) starts at %v, want index %d", mid, page, all[len(all)/2+1].GetIndex())
		}
	})
}

// TestPagingZeroLimit asks List and AdminEvents for zero items.
func TestPagingZeroLimit(t *testing.T) {
	s := statetest.Run(t, state.New(), 1, statetest.Script()[:5])
	if got, _ := s.List(resource.Upstream, "", 0); len(got) != 0 {
		t.Fatalf("List(limit 0) = %d items", len(got))
	}
	if got, _ := s.AdminEvents(0, 0); len(got) != 0 {
		t.Fatalf("AdminEvents(limit 0) = %d events", len(got))
	}
}
