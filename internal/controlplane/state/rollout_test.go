package state_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
)

const (
	shadow   = configv1.RolloutStage_ROLLOUT_STAGE_SHADOW
	canaryS  = configv1.RolloutStage_ROLLOUT_STAGE_CANARY
	complete = configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE
	promote  = fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE
	pause    = fsmv1.RolloutAction_ROLLOUT_ACTION_PAUSE
	resume   = fsmv1.RolloutAction_ROLLOUT_ACTION_RESUME
	abort    = fsmv1.RolloutAction_ROLLOUT_ACTION_ABORT
	rollback = fsmv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK

	ok          = fsmv1.ErrorCode_ERROR_CODE_UNSPECIFIED
	invalid     = fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	notFound    = fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND
	failedPre   = fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
	abortedCode = fsmv1.ErrorCode_ERROR_CODE_ABORTED
)

// Sources of the "limits" set of the base state (version 1 is
// statetest.AmountPolicy("up__send")).
var (
	v2Source = statetest.PermitAll + statetest.AmountPolicy("up__send")
	v3Source = "@id(\"cap\")\nforbid(principal, action == Action::\"up__send\", resource)\nwhen { context.arguments.amount > 100 };\n"
)

// rolloutBase is the base state with every voter at the current cluster
// version, so policy sets keep history and rollouts may be written.
func rolloutBase(t testing.TB) *state.State {
	t.Helper()
	s := base(t)
	return statetest.Run(t, s, s.Index()+1, []statetest.Step{
		{Name: "n1 version", Cmd: statetest.Update(statetest.NodeAt("n1", clusterversion.Current()))},
		{Name: "n2 version", Cmd: statetest.Update(statetest.NodeAt("n2", clusterversion.Current()))},
	})
}

// apply applies cmds to s in turn at the next indexes (at time 1000+i s)
// and returns the state and the last result; it fails the test when a
// command before the last is refused.
func apply(t testing.TB, s *state.State, cmds ...*fsmv1.Command) (*state.State, *fsmv1.Result) {
	t.Helper()
	var res *fsmv1.Result
	for i, c := range cmds {
		c.Time = statetest.At(1000 + int64(s.Index()))
		s, res = state.Apply(s, s.Index()+1, c)
		if i < len(cmds)-1 && res.GetError() != nil {
			t.Fatalf("command %d (%s): %v", i, c.GetMethod(), res.GetError())
		}
	}
	return s, res
}

func set(source string) *fsmv1.Command {
	return statetest.Upsert(statetest.PolicySet("limits", source))
}

func history(s *state.State, name string) []int64 {
	h, ok := s.Get(resource.PolicyHistory, name)
	if !ok {
		return nil
	}
	var out []int64
	for _, v := range h.GetPolicyHistory().GetVersions() {
		out = append(out, v.GetVersion())
	}
	return out
}

func policySet(t testing.TB, s *state.State) *configv1.PolicySet {
	t.Helper()
	r, ok := s.Get(resource.PolicySet, "limits")
	if !ok {
		t.Fatal("policy set limits is gone")
	}
	return r.GetPolicySet()
}

func rolloutOf(t testing.TB, s *state.State, name string) *configv1.Rollout {
	t.Helper()
	r, ok := s.Get(resource.Rollout, name)
	if !ok {
		t.Fatalf("rollout %s does not exist", name)
	}
	return r.GetRollout()
}

func change(name string, a fsmv1.RolloutAction, at configv1.RolloutStage, step uint32) *fsmv1.Command {
	return statetest.Change(name, a, at, step, "why "+a.String())
}

func TestPolicyHistory(t *testing.T) {
	withMessage := statetest.PolicySet("limits", v2Source)
	withMessage.Message = "permit below the cap"
	limited := func(src string) *fsmv1.Command {
		ps := statetest.PolicySet("limits", src)
		ps.HistoryLimit = 3
		return statetest.Upsert(ps)
	}
	restore := func(v int64, src string) *fsmv1.Command {
		ps := statetest.PolicySet("limits", src)
		ps.Restores = v
		return statetest.Upsert(ps)
	}
	tests := []struct {
		name     string
		baseline bool // the voters are left at the baseline version
		cmds     []*fsmv1.Command
		code     fsmv1.ErrorCode
		want     []int64
	}{
		{name: "a new source records a version", cmds: []*fsmv1.Command{statetest.Upsert(withMessage)}, want: []int64{1, 2}},
		{name: "the same source records nothing", cmds: []*fsmv1.Command{set(statetest.AmountPolicy("up__send"))}, want: []int64{1}},
		{name: "no history before every voter supports it", baseline: true, cmds: []*fsmv1.Command{set(v2Source)}},
		{name: "the history keeps its limit", cmds: []*fsmv1.Command{limited(v2Source), set(v3Source), set(statetest.PermitAll), set(v2Source)}, want: []int64{3, 4, 5}},
		{name: "a rollback restores a kept version", cmds: []*fsmv1.Command{set(v2Source), restore(1, statetest.AmountPolicy("up__send"))}, want: []int64{1, 2, 3}},
		{name: "a rollback with another source is refused", cmds: []*fsmv1.Command{set(v2Source), restore(1, v3Source)}, code: failedPre, want: []int64{1, 2}},
		{name: "a rollback to a version not kept is refused", cmds: []*fsmv1.Command{restore(7, statetest.AmountPolicy("up__send"))}, code: notFound, want: []int64{1}},
		{name: "a rollback before every voter supports it is refused", baseline: true, cmds: []*fsmv1.Command{restore(1, statetest.AmountPolicy("up__send"))}, code: failedPre},
		{name: "a history cannot be written", cmds: []*fsmv1.Command{statetest.Upsert(&configv1.PolicyHistory{Meta: &configv1.ResourceMeta{Name: "limits"}})}, code: failedPre, want: []int64{1}},
		{name: "a history cannot be deleted", cmds: []*fsmv1.Command{statetest.Delete(resource.PolicyHistory, "limits")}, code: failedPre, want: []int64{1}},
		{name: "the history goes with its set", cmds: []*fsmv1.Command{statetest.Delete(resource.PolicySet, "limits")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rolloutBase(t)
			if tt.baseline {
				s = base(t)
			} else {
				// The base set predates the history: its first write seeds it.
				s, _ = apply(t, s, set(statetest.AmountPolicy("up__send")+"\n"), set(statetest.AmountPolicy("up__send")))
				s, _ = apply(t, s, statetest.Delete(resource.PolicySet, "limits"), statetest.Create(statetest.PolicySet("limits", statetest.AmountPolicy("up__send"))))
			}
			s, res := apply(t, s, tt.cmds...)
			if got := res.GetError().GetCode(); got != tt.code {
				t.Fatalf("result %v, want %v", res.GetError(), tt.code)
			}
			if got := history(s, "limits"); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("history %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPolicyHistoryDetails: a version records who, how and why, a set
// written before history existed seeds it with the version it had, and a
// rollback names the version it restores.
func TestPolicyHistoryDetails(t *testing.T) {
	s := rolloutBase(t) // "limits" version 1 was written before history
	ps := statetest.PolicySet("limits", v2Source)
	ps.Message = "permit below the cap"
	cmd := statetest.By(statetest.Upsert(ps), opToken, "r-v2", 0)
	s, res := apply(t, s, cmd)
	if res.GetError() != nil {
		t.Fatal(res.GetError())
	}
	h, _ := s.Get(resource.PolicyHistory, "limits")
	vs := h.GetPolicyHistory().GetVersions()
	if len(vs) != 2 || vs[0].GetVersion() != 1 || vs[0].GetSource() != statetest.AmountPolicy("up__send") {
		t.Fatalf("history %v: want the earlier version 1 seeded first", vs)
	}
	v := vs[1]
	if v.GetVersion() != 2 || v.GetActor() != opToken || v.GetMethod() != "Test.Put" || v.GetMessage() != "permit below the cap" ||
		v.GetSource() != v2Source || len(v.GetPolicyIds()) != 2 || !proto.Equal(v.GetTime(), cmd.GetTime()) {
		t.Fatalf("version 2 recorded as %v", v)
	}
	back := statetest.PolicySet("limits", statetest.AmountPolicy("up__send"))
	back.Restores = 1
	s, res = apply(t, s, statetest.Upsert(back))
	if res.GetError() != nil {
		t.Fatal(res.GetError())
	}
	h, _ = s.Get(resource.PolicyHistory, "limits")
	if last := h.GetPolicyHistory().GetVersions()[2]; last.GetVersion() != 3 || last.GetRestores() != 1 {
		t.Fatalf("the rollback was recorded as %v", last)
	}
}

// TestPolicyHistoryBytes: the history drops its oldest versions to stay
// within limits.PolicyHistoryBytes of sources.
func TestPolicyHistoryBytes(t *testing.T) {
	s := rolloutBase(t)
	pad := strings.Repeat("// padding to make the source large\n", (limits.PolicySetSource-1024)/37)
	var cmds []*fsmv1.Command
	for i := range 10 {
		cmds = append(cmds, set(fmt.Sprintf("%s// version %d\n%s", statetest.PermitAll, i, pad)))
	}
	s, res := apply(t, s, cmds...)
	if res.GetError() != nil {
		t.Fatal(res.GetError())
	}
	h, _ := s.Get(resource.PolicyHistory, "limits")
	total := 0
	for _, v := range h.GetPolicyHistory().GetVersions() {
		total += len(v.GetSource())
	}
	vs := history(s, "limits")
	if total > limits.PolicyHistoryBytes || len(vs) >= 10 || vs[len(vs)-1] != policySet(t, s).GetVersion() {
		t.Fatalf("history %v holds %d bytes of sources; want at most %d, ending with the active version", vs, total, limits.PolicyHistoryBytes)
	}
}

func TestPolicyTests(t *testing.T) {
	tests := []struct {
		name string
		cmds []*fsmv1.Command
		code fsmv1.ErrorCode
		has  bool
	}{
		{name: "stored with an existing set", cmds: []*fsmv1.Command{statetest.Upsert(statetest.PolicyTests("limits", "up__send", "allow"))}, has: true},
		{name: "refused without the set", cmds: []*fsmv1.Command{statetest.Upsert(statetest.PolicyTests("other", "up__send", "allow"))}, code: notFound},
		{name: "deleted with the set", cmds: []*fsmv1.Command{statetest.Upsert(statetest.PolicyTests("limits", "up__send", "allow")), statetest.Delete(resource.PolicySet, "limits")}},
		{name: "refused when a case expects neither", cmds: []*fsmv1.Command{statetest.Upsert(statetest.PolicyTests("limits", "up__send", "maybe"))}, code: invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, res := apply(t, rolloutBase(t), tt.cmds...)
			if got := res.GetError().GetCode(); got != tt.code {
				t.Fatalf("result %v, want %v", res.GetError(), tt.code)
			}
			if _, has := s.Get(resource.PolicyTests, "limits"); has != tt.has {
				t.Fatalf("tests stored: %t, want %t", has, tt.has)
			}
		})
	}
}

func TestRolloutStart(t *testing.T) {
	disabled := statetest.PolicySet("limits", statetest.AmountPolicy("up__send"))
	disabled.Disabled = true
	r := func(name, src string) *configv1.Rollout { return statetest.Rollout(name, "limits", src, 60, 5000) }
	stale := r("r1", v3Source)
	stale.TestsRevision = 1
	noPlan := statetest.Rollout("r1", "limits", v3Source, 0)
	listed := r("r1", statetest.ListPolicy("payees"))
	tests := []struct {
		name  string
		setup []*fsmv1.Command
		cmd   *fsmv1.Command
		code  fsmv1.ErrorCode
		stage configv1.RolloutStage
		msg   string
		base  int64 // the set's version when it starts (0: 1)
	}{
		{name: "shadow first", cmd: statetest.Create(r("r1", v3Source)), stage: shadow},
		{name: "canary without shadow", cmd: statetest.Create(statetest.Rollout("r1", "limits", v3Source, 0, 2500)), stage: canaryS},
		{name: "neither completes at once", cmd: statetest.Create(noPlan), stage: complete},
		{name: "the set must exist", cmd: statetest.Create(statetest.Rollout("r1", "nope", v3Source, 60)), code: notFound},
		{name: "the set must be enabled", setup: []*fsmv1.Command{statetest.Upsert(disabled)}, cmd: statetest.Create(r("r1", v3Source)), code: failedPre, msg: "disabled"},
		{name: "the candidate must differ", cmd: statetest.Create(r("r1", statetest.AmountPolicy("up__send"))), code: failedPre, msg: "active version"},
		{name: "the candidate must validate", cmd: statetest.Create(r("r1", `permit(principal, action == Action::"up__nope", resource);`)), code: invalid},
		{name: "the lists the candidate reads must exist", cmd: statetest.Create(listed), code: failedPre, msg: "value list"},
		{name: "stored tests changed since they passed", setup: []*fsmv1.Command{statetest.Upsert(statetest.PolicyTests("limits", "up__send", "allow"))},
			cmd: statetest.Create(stale), code: abortedCode},
		{name: "stored tests deleted since they passed", cmd: statetest.Create(stale), code: abortedCode},
		{name: "one rollout at a time", setup: []*fsmv1.Command{statetest.Create(r("r0", v2Source))}, cmd: statetest.Create(r("r1", v3Source)), code: failedPre, msg: "one rollout runs at a time"},
		{name: "a rollout cannot be rewritten", setup: []*fsmv1.Command{statetest.Create(r("r1", v3Source))}, cmd: statetest.Upsert(r("r1", v2Source)), code: failedPre, msg: "changes only by"},
		{name: "a rollout of a set another rollout finished", setup: []*fsmv1.Command{statetest.Create(noPlan)}, cmd: statetest.Create(r("r2", v2Source)), stage: shadow, base: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := apply(t, rolloutBase(t), tt.setup...)
			s, res := apply(t, s, tt.cmd)
			if got := res.GetError().GetCode(); got != tt.code || !strings.Contains(res.GetError().GetMessage(), tt.msg) {
				t.Fatalf("result %v, want %v containing %q", res.GetError(), tt.code, tt.msg)
			}
			if tt.code != ok {
				return
			}
			ro := res.GetResource().GetRollout()
			if ro.GetStage() != tt.stage || ro.GetBaseVersion() != max(tt.base, 1) || len(ro.GetTransitions()) != 1 || ro.GetTransitions()[0].GetAction() != "start" {
				t.Fatalf("rollout %v: want stage %v at base version 1 with a start transition", ro, tt.stage)
			}
			if tt.stage == complete {
				ps := policySet(t, s)
				h, _ := s.Get(resource.PolicyHistory, "limits")
				last := h.GetPolicyHistory().GetVersions()[len(h.GetPolicyHistory().GetVersions())-1]
				if ps.GetVersion() != 2 || ps.GetSource() != v3Source || last.GetRollout() != "r1" || last.GetMessage() != "stage r1" {
					t.Fatalf("after completing at once: set version %d, history %v", ps.GetVersion(), last)
				}
			}
		})
	}
}

func TestRolloutChange(t *testing.T) {
	start := statetest.Create(statetest.Rollout("r1", "limits", v3Source, 60, 2500, 5000))
	tests := []struct {
		name    string
		cmds    []*fsmv1.Command
		code    fsmv1.ErrorCode
		stage   configv1.RolloutStage
		step    uint32
		version int64 // of the set afterwards
		source  string
	}{
		{name: "promote to the first canary step", cmds: []*fsmv1.Command{change("r1", promote, shadow, 0)}, stage: canaryS, version: 1},
		{name: "promote to the next step", cmds: []*fsmv1.Command{change("r1", promote, shadow, 0), change("r1", promote, canaryS, 0)}, stage: canaryS, step: 1, version: 1},
		{name: "complete after the last step", cmds: []*fsmv1.Command{change("r1", promote, shadow, 0), change("r1", promote, canaryS, 0), change("r1", promote, canaryS, 1)},
			stage: complete, version: 2, source: v3Source},
		{name: "a change decided at another stage", cmds: []*fsmv1.Command{change("r1", promote, canaryS, 0)}, code: abortedCode},
		{name: "a change decided at another step", cmds: []*fsmv1.Command{change("r1", promote, shadow, 0), change("r1", promote, canaryS, 1)}, code: abortedCode},
		{name: "abort keeps the active version", cmds: []*fsmv1.Command{change("r1", abort, shadow, 0)}, stage: configv1.RolloutStage_ROLLOUT_STAGE_ABORTED, version: 1},
		{name: "rollback in canary keeps the active version", cmds: []*fsmv1.Command{change("r1", promote, shadow, 0), change("r1", rollback, canaryS, 0)},
			stage: configv1.RolloutStage_ROLLOUT_STAGE_ROLLED_BACK, version: 1},
		{name: "rollback after completion restores the replaced version",
			cmds:  []*fsmv1.Command{change("r1", promote, shadow, 0), change("r1", promote, canaryS, 0), change("r1", promote, canaryS, 1), change("r1", rollback, complete, 0)},
			stage: configv1.RolloutStage_ROLLOUT_STAGE_ROLLED_BACK, version: 3, source: statetest.AmountPolicy("up__send")},
		{name: "rollback after the set moved on is refused",
			cmds: []*fsmv1.Command{change("r1", promote, shadow, 0), change("r1", promote, canaryS, 0), change("r1", promote, canaryS, 1), set(v2Source), change("r1", rollback, complete, 0)},
			code: failedPre},
		{name: "an aborted rollout stays over", cmds: []*fsmv1.Command{change("r1", abort, shadow, 0), change("r1", promote, configv1.RolloutStage_ROLLOUT_STAGE_ABORTED, 0)}, code: failedPre},
		{name: "an unknown rollout", cmds: []*fsmv1.Command{change("r9", promote, shadow, 0)}, code: notFound},
		{name: "an unknown action", cmds: []*fsmv1.Command{change("r1", fsmv1.RolloutAction_ROLLOUT_ACTION_UNSPECIFIED, shadow, 0)}, code: invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := apply(t, rolloutBase(t), start)
			s, res := apply(t, s, tt.cmds...)
			if got := res.GetError().GetCode(); got != tt.code {
				t.Fatalf("result %v, want %v", res.GetError(), tt.code)
			}
			if tt.code != ok {
				return
			}
			ro := rolloutOf(t, s, "r1")
			if ro.GetStage() != tt.stage || ro.GetCanaryStep() != tt.step {
				t.Fatalf("rollout at %v step %d, want %v step %d", ro.GetStage(), ro.GetCanaryStep(), tt.stage, tt.step)
			}
			if ps := policySet(t, s); ps.GetVersion() != tt.version || (tt.source != "" && ps.GetSource() != tt.source) {
				t.Fatalf("set at version %d, want %d (source %q)", ps.GetVersion(), tt.version, tt.source)
			}
			if tr := ro.GetTransitions()[len(ro.GetTransitions())-1]; tr.GetReason() != tt.cmds[len(tt.cmds)-1].GetRolloutChange().GetReason() {
				t.Fatalf("last transition %v does not keep the reason", tr)
			}
		})
	}
}

// TestRolloutPauseResume: a pause holds the stage's clock's start; a
// resume starts it again.
func TestRolloutPauseResume(t *testing.T) {
	s, _ := apply(t, rolloutBase(t), statetest.Create(statetest.Rollout("r1", "limits", v3Source, 60)))
	began := rolloutOf(t, s, "r1").GetStageStartTime()
	s, _ = apply(t, s, change("r1", pause, shadow, 0))
	if ro := rolloutOf(t, s, "r1"); !ro.GetPaused() || !proto.Equal(ro.GetStageStartTime(), began) {
		t.Fatalf("after pause: paused %t, stage began %v (was %v)", ro.GetPaused(), ro.GetStageStartTime(), began)
	}
	cmd := change("r1", resume, shadow, 0)
	s, _ = apply(t, s, cmd)
	if ro := rolloutOf(t, s, "r1"); ro.GetPaused() || !proto.Equal(ro.GetStageStartTime(), cmd.GetTime()) {
		t.Fatalf("after resume: paused %t, stage began %v, want %v", ro.GetPaused(), ro.GetStageStartTime(), cmd.GetTime())
	}
	// Transitions are bounded.
	var cmds []*fsmv1.Command
	for range limits.RolloutTransitions {
		cmds = append(cmds, change("r1", pause, shadow, 0), change("r1", resume, shadow, 0))
	}
	s, _ = apply(t, s, cmds...)
	if n := len(rolloutOf(t, s, "r1").GetTransitions()); n != limits.RolloutTransitions {
		t.Fatalf("%d transitions kept, want %d", n, limits.RolloutTransitions)
	}
}

// TestRolloutProtectsItsSet: while a rollout is in progress its set cannot
// be applied, deleted or lose what the candidate reads; afterwards it can.
func TestRolloutProtectsItsSet(t *testing.T) {
	candidate := statetest.ListPolicy("payees") + statetest.AmountPolicy("up__send")
	start := statetest.Create(statetest.Rollout("r1", "limits", candidate, 60))
	stringPin := statetest.Upsert(statetest.ToolPin("up", "send", statetest.AmountSchema("string")))
	tests := []struct {
		name string
		cmd  *fsmv1.Command
		msg  string
	}{
		{name: "apply", cmd: set(v2Source), msg: "is in rollout r1"},
		{name: "delete", cmd: statetest.Delete(resource.PolicySet, "limits"), msg: "is in rollout r1"},
		{name: "a list the candidate reads", cmd: statetest.Delete(resource.ValueList, "payees"), msg: "candidate of rollout r1"},
		{name: "a pin change that breaks the candidate", cmd: stringPin, msg: "candidate of rollout r1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The active version reads no amount; the candidate does.
			s, _ := apply(t, rolloutBase(t), set(statetest.PermitAll), statetest.Create(statetest.ValueList("payees", "acme")), start)
			_, res := apply(t, s, tt.cmd)
			if res.GetError().GetCode() != failedPre || !strings.Contains(res.GetError().GetMessage(), tt.msg) {
				t.Fatalf("result %v, want FAILED_PRECONDITION saying %q", res.GetError(), tt.msg)
			}
			s, _ = apply(t, s, change("r1", abort, shadow, 0))
			if _, res = apply(t, s, tt.cmd); res.GetError() != nil {
				t.Fatalf("after the rollout: %v", res.GetError())
			}
		})
	}
}

// TestRolloutsAreBounded: starting a rollout when limits.Rollouts are kept
// drops the oldest that is over.
func TestRolloutsAreBounded(t *testing.T) {
	s := rolloutBase(t)
	for i := range limits.Rollouts + 1 {
		name := fmt.Sprintf("r%02d", i)
		s, _ = apply(t, s, statetest.Create(statetest.Rollout(name, "limits", v3Source, 60)), change(name, abort, shadow, 0))
	}
	if n := s.Count(resource.Rollout); n != limits.Rollouts {
		t.Fatalf("%d rollouts kept, want %d", n, limits.Rollouts)
	}
	if _, ok := s.Get(resource.Rollout, "r00"); ok {
		t.Fatal("the oldest rollout was kept")
	}
	if _, res := apply(t, s, statetest.Delete(resource.Rollout, "r10")); res.GetError() != nil {
		t.Fatalf("deleting a finished rollout: %v", res.GetError())
	}
	s, _ = apply(t, s, statetest.Create(statetest.Rollout("active", "limits", v3Source, 60)))
	if _, res := apply(t, s, statetest.Delete(resource.Rollout, "active")); res.GetError().GetCode() != failedPre {
		t.Fatalf("deleting the rollout in progress: %v, want FAILED_PRECONDITION", res.GetError())
	}
}

// TestRolloutAdminEvents: a rollout's changes say what they did in the
// admin log.
func TestRolloutAdminEvents(t *testing.T) {
	s, _ := apply(t, rolloutBase(t), statetest.Create(statetest.Rollout("r1", "limits", v3Source, 60, 2500)))
	c := change("r1", promote, shadow, 0)
	c.GetRolloutChange().Automatic = true
	s, _ = apply(t, s, c)
	evs, _ := s.AdminEvents(0, 2)
	if evs[0].GetOp() != "rollout_promote" || evs[0].GetDetail() != "promote (automatic): shadow → canary 25%: why ROLLOUT_ACTION_PROMOTE" {
		t.Fatalf("event %v", evs[0])
	}
	if evs[1].GetOp() != "put" || evs[1].GetDetail() != "start: shadow" {
		t.Fatalf("event %v", evs[1])
	}
}

// TestRolloutConfigVersion: the config version moves when what data planes
// serve of a rollout changes (its stage, its share), not on a pause, a
// resume or a finished rollout deleted.
func TestRolloutConfigVersion(t *testing.T) {
	s, _ := apply(t, rolloutBase(t))
	steps := []struct {
		name  string
		cmd   *fsmv1.Command
		moves bool
	}{
		{name: "start in shadow", cmd: statetest.Create(statetest.Rollout("r1", "limits", v3Source, 60, 2500, 5000)), moves: true},
		{name: "pause", cmd: change("r1", pause, shadow, 0)},
		{name: "resume", cmd: change("r1", resume, shadow, 0)},
		{name: "promote to canary", cmd: change("r1", promote, shadow, 0), moves: true},
		{name: "the next share", cmd: change("r1", promote, canaryS, 0), moves: true},
		{name: "abort", cmd: change("r1", abort, canaryS, 1), moves: true},
		{name: "delete the finished rollout", cmd: statetest.Delete(resource.Rollout, "r1")},
	}
	for _, st := range steps {
		before := s.ConfigVersion()
		var res *fsmv1.Result
		s, res = apply(t, s, st.cmd)
		if res.GetError() != nil {
			t.Fatalf("%s: %v", st.name, res.GetError())
		}
		if moved := s.ConfigVersion() != before; moved != st.moves {
			t.Errorf("%s: config version moved %t, want %t", st.name, moved, st.moves)
		}
	}
}
