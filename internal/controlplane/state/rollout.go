package state

import (
	"fmt"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
)

// This file holds the stateful rules of policy history, stored policy
// tests and staged rollouts (cluster version PolicyRollouts):
//
//   - Every change of a policy set's source records a version in the
//     set's history (PolicyHistory, named like the set), once every voter
//     supports the version; the history is bounded by the set's
//     history_limit and by limits.PolicyHistoryBytes, and deleted with the
//     set. Nothing else writes a history.
//   - Test cases (PolicyTests) belong to an existing set and go with it.
//   - A rollout is created by a put and changed only by RolloutChange. At
//     most one rollout is in shadow or canary, and while it is, its set
//     cannot be applied, deleted or rolled back, a pin change must keep
//     its candidate valid, and the value lists it reads cannot go.
//     Completing it writes the candidate as the set's next version;
//     rolling back a completed one writes the version it replaced.

// ActiveRollout returns the rollout in shadow or canary, if any.
func (s *State) ActiveRollout() (*configv1.Rollout, bool) {
	return activeRollout(s.Each)
}

func activeRollout(each func(resource.Kind, func(*fsmv1.Resource) bool)) (*configv1.Rollout, bool) {
	var found *configv1.Rollout
	each(resource.Rollout, func(r *fsmv1.Resource) bool {
		if Active(r.GetRollout()) {
			found = r.GetRollout()
			return false
		}
		return true
	})
	return found, found != nil
}

// Active reports whether a rollout is in shadow or canary.
func Active(r *configv1.Rollout) bool {
	return r.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_SHADOW || r.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_CANARY
}

// StageName is a stage's lower-case name ("shadow", "rolled_back").
func StageName(s configv1.RolloutStage) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "ROLLOUT_STAGE_"))
}

// CanaryShare is the canary share of a rollout's current step in basis
// points (0 outside canary).
func CanaryShare(r *configv1.Rollout) uint32 {
	steps := r.GetPlan().GetCanaryBasisPoints()
	if r.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_CANARY || int(r.GetCanaryStep()) >= len(steps) {
		return 0
	}
	return steps[r.GetCanaryStep()]
}

// CandidateSet is the policy set a rollout's candidate would make of set:
// its name, the candidate's source, file name and derived fields, and
// the next version number. set is not changed.
func CandidateSet(set *configv1.PolicySet, r *configv1.Rollout) *configv1.PolicySet {
	ps := proto.CloneOf(set)
	ps.Source = r.GetSource()
	ps.Filename = r.GetFilename()
	ps.PolicyIds = slices.Clone(r.GetPolicyIds())
	ps.ValueLists = slices.Clone(r.GetValueLists())
	ps.Version = r.GetBaseVersion() + 1
	ps.Message = r.GetMessage()
	ps.Restores = 0
	return ps
}

// policySetChange refuses changes of a set that an active rollout stages.
func policySetChange(t *txn, name, what string) *fsmv1.Error {
	if ro, ok := activeRollout(t.each); ok && ro.GetPolicySet() == name {
		return failed("policy set %q is in rollout %s (%s); %s it only after the rollout is over: gwctl rollout promote, rollback or abort %s",
			name, ro.GetMeta().GetName(), StageName(ro.GetStage()), what, ro.GetMeta().GetName())
	}
	return nil
}

// historyOn reports whether policy sets keep history: once every voter
// supports the version, decided from the replicated voters alone.
func (t *txn) historyOn() bool {
	return clusterversion.Supports(t.base.Voters(), clusterversion.PolicyRollouts)
}

// checkRestore refuses a rollback whose version is not in the history
// with the same source.
func checkRestore(t *txn, ps *configv1.PolicySet) *fsmv1.Error {
	if ps.GetRestores() == 0 {
		return nil
	}
	if !t.historyOn() {
		return failed("policy history needs cluster version %d on every voter", clusterversion.PolicyRollouts)
	}
	h, ok := t.get(resource.PolicyHistory, ps.GetMeta().GetName())
	if ok {
		for _, v := range h.GetPolicyHistory().GetVersions() {
			if v.GetVersion() == ps.GetRestores() {
				if v.GetSource() != ps.GetSource() {
					return failed("version %d of policy set %q has another source than the one given", ps.GetRestores(), ps.GetMeta().GetName())
				}
				return nil
			}
		}
	}
	return errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "policy set %q keeps no version %d", ps.GetMeta().GetName(), ps.GetRestores())
}

// afterPolicySet records a new version in the set's history, or deletes
// the history and the stored tests with the set.
func afterPolicySet(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	if r == nil {
		name := resource.Name(old)
		for _, k := range []resource.Kind{resource.PolicyHistory, resource.PolicyTests} {
			if _, ok := t.get(k, name); ok {
				t.remove(k, name)
			}
		}
		return nil
	}
	if !t.historyOn() {
		return nil
	}
	ps := r.GetPolicySet()
	name := ps.GetMeta().GetName()
	var h *configv1.PolicyHistory
	if cur, ok := t.get(resource.PolicyHistory, name); ok {
		h = proto.CloneOf(cur.GetPolicyHistory())
	} else {
		h = &configv1.PolicyHistory{Meta: &configv1.ResourceMeta{Name: name}}
		// A set written before history existed: keep the version it had.
		if prev := old.GetPolicySet(); prev != nil {
			h.Versions = append(h.Versions, &configv1.PolicyVersion{
				Version: prev.GetVersion(), Source: prev.GetSource(), Filename: prev.GetFilename(), PolicyIds: prev.GetPolicyIds(),
				Time: prev.GetMeta().GetUpdateTime(), Actor: prev.GetMeta().GetUpdatedBy(), Message: prev.GetMessage(),
			})
		}
	}
	changed := old == nil || old.GetPolicySet().GetVersion() != ps.GetVersion()
	if changed {
		v := &configv1.PolicyVersion{
			Version: ps.GetVersion(), Source: ps.GetSource(), Filename: ps.GetFilename(), PolicyIds: ps.GetPolicyIds(),
			Time: t.cmd.GetTime(), Actor: t.cmd.GetActor().GetTokenId(), Method: t.cmd.GetMethod(),
			Message: ps.GetMessage(), Restores: ps.GetRestores(), Rollout: t.completing,
		}
		h.Versions = append(h.Versions, v)
	}
	trimHistory(h, int(ps.GetHistoryLimit()))
	if cur, ok := t.get(resource.PolicyHistory, name); ok && slices.EqualFunc(cur.GetPolicyHistory().GetVersions(), h.GetVersions(), func(a, b *configv1.PolicyVersion) bool { return proto.Equal(a, b) }) {
		return nil
	}
	hr := resource.Wrap(h)
	prevRes, existed := t.get(resource.PolicyHistory, name)
	if !existed {
		prevRes = nil
	}
	t.stamp(prevRes, hr)
	t.insert(hr)
	return nil
}

// trimHistory keeps at most limit versions (0: the default) and at most
// limits.PolicyHistoryBytes of sources, dropping the oldest; the newest
// version is always kept.
func trimHistory(h *configv1.PolicyHistory, limit int) {
	if limit <= 0 {
		limit = limits.PolicyHistoryDefault
	}
	vs := h.GetVersions()
	if len(vs) > limit {
		vs = vs[len(vs)-limit:]
	}
	total := 0
	for _, v := range vs {
		total += len(v.GetSource())
	}
	for len(vs) > 1 && total > limits.PolicyHistoryBytes {
		total -= len(vs[0].GetSource())
		vs = vs[1:]
	}
	h.Versions = vs
}

func preparePolicyHistory(_ *txn, _, r *fsmv1.Resource) *fsmv1.Error {
	return failed("the history of policy set %q is kept by the control plane and cannot be written", resource.Name(r))
}

func beforeDeletePolicyHistory(_ *txn, old *fsmv1.Resource) *fsmv1.Error {
	return failed("the history of policy set %q goes only with the set", resource.Name(old))
}

// preparePolicyTests requires the set the cases belong to.
func preparePolicyTests(t *txn, _, r *fsmv1.Resource) *fsmv1.Error {
	if _, ok := t.get(resource.PolicySet, resource.Name(r)); !ok {
		return errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "policy set %q does not exist; apply it before storing its tests", resource.Name(r))
	}
	return nil
}

// prepareRollout starts a rollout: the set must exist and be enabled, no
// other rollout may be in progress, the candidate must parse and validate
// against the schema of the state being written, and the stored tests
// must be the ones the candidate passed. It sets the stage from the plan
// (a plan without shadow and canary completes at once).
func prepareRollout(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	ro := r.GetRollout()
	name := ro.GetMeta().GetName()
	if old != nil {
		return failed("rollout %q exists; a rollout changes only by gwctl rollout promote, pause, resume, abort or rollback", name)
	}
	if cur, ok := activeRollout(t.each); ok {
		return failed("rollout %s of policy set %q is in %s; one rollout runs at a time: finish, roll back or abort it first",
			cur.GetMeta().GetName(), cur.GetPolicySet(), StageName(cur.GetStage()))
	}
	setRes, ok := t.get(resource.PolicySet, ro.GetPolicySet())
	if !ok {
		return errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "policy set %q does not exist; apply its first version with gwctl policy apply", ro.GetPolicySet())
	}
	set := setRes.GetPolicySet()
	if set.GetDisabled() {
		return failed("policy set %q is disabled and decides nothing; enable it first", ro.GetPolicySet())
	}
	if ro.GetFilename() == "" {
		ro.Filename = set.GetFilename()
	}
	if ro.GetSource() == set.GetSource() {
		return failed("the candidate is policy set %q's active version %d", ro.GetPolicySet(), set.GetVersion())
	}
	if err := parseCandidate(t, ro); err != nil {
		return err
	}
	tests, has := t.get(resource.PolicyTests, ro.GetPolicySet())
	switch {
	case has && tests.GetPolicyTests().GetMeta().GetRevision() != ro.GetTestsRevision():
		return errf(fsmv1.ErrorCode_ERROR_CODE_ABORTED, "the stored tests of policy set %q changed since the candidate passed them; start the rollout again", ro.GetPolicySet())
	case !has && ro.GetTestsRevision() != 0:
		return errf(fsmv1.ErrorCode_ERROR_CODE_ABORTED, "the stored tests of policy set %q were deleted since the candidate passed them; start the rollout again", ro.GetPolicySet())
	}
	ro.BaseVersion = set.GetVersion()
	ro.Reason = ""
	ro.Paused = false
	ro.CanaryStep = 0
	ro.StageStartTime = t.cmd.GetTime()
	ro.Transitions = nil
	to := configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE
	switch {
	case ro.GetPlan().GetShadow().AsDuration() > 0:
		to = configv1.RolloutStage_ROLLOUT_STAGE_SHADOW
	case len(ro.GetPlan().GetCanaryBasisPoints()) > 0:
		to = configv1.RolloutStage_ROLLOUT_STAGE_CANARY
	}
	ro.Stage = to
	t.configChanged = t.configChanged || Active(ro) // data planes serve it from now
	t.transition(ro, "start", configv1.RolloutStage_ROLLOUT_STAGE_UNSPECIFIED, false, "")
	dropOldRollouts(t)
	if to == configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE {
		return t.completeRollout(ro, set)
	}
	return nil
}

// parseCandidate validates the candidate strictly against the schema of
// the state being written and fills its policy ids and value lists.
func parseCandidate(t *txn, ro *configv1.Rollout) *fsmv1.Error {
	schema, err := t.cedarSchema()
	if err != nil {
		return failed("the gateway's Cedar schema cannot be generated: %v", err)
	}
	set, err := t.parsedSet(resource.Rollout, ro.GetMeta().GetName(), ro.GetPolicySet(), ro.GetFilename(), ro.GetSource())
	if err != nil {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	parsed, err := schema.Validate(set)
	if err != nil {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	ro.PolicyIds = ro.PolicyIds[:0]
	for _, p := range parsed.Policies {
		ro.PolicyIds = append(ro.PolicyIds, p.ID)
	}
	ro.ValueLists = parsed.Lists()
	for _, l := range ro.ValueLists {
		if _, ok := t.get(resource.ValueList, l); !ok {
			return failed("the candidate refers to value list %q, which does not exist; create it first (gwctl valuelist create %s)", l, l)
		}
	}
	return nil
}

// dropOldRollouts keeps the number of rollouts below limits.Rollouts by
// deleting the oldest that are over (by creation index, then name).
func dropOldRollouts(t *txn) {
	var over []*fsmv1.Resource
	n := 0
	t.each(resource.Rollout, func(r *fsmv1.Resource) bool {
		n++
		if !Active(r.GetRollout()) {
			over = append(over, r)
		}
		return true
	})
	if n < limits.Rollouts {
		return
	}
	slices.SortFunc(over, func(a, b *fsmv1.Resource) int {
		ca, cb := resource.Meta(a).GetCreateTime().AsTime(), resource.Meta(b).GetCreateTime().AsTime()
		if c := ca.Compare(cb); c != 0 {
			return c
		}
		return strings.Compare(resource.Name(a), resource.Name(b))
	})
	for i := 0; n >= limits.Rollouts && i < len(over); i++ {
		t.remove(resource.Rollout, resource.Name(over[i]))
		n--
	}
}

func beforeDeleteRollout(_ *txn, old *fsmv1.Resource) *fsmv1.Error {
	if Active(old.GetRollout()) {
		return failed("rollout %q is in %s; abort or roll it back first", resource.Name(old), StageName(old.GetRollout().GetStage()))
	}
	return nil
}

// transition records a change of ro's stage, keeping the last
// limits.RolloutTransitions, and words it for the admin log.
func (t *txn) transition(ro *configv1.Rollout, action string, from configv1.RolloutStage, automatic bool, reason string) {
	tr := &configv1.RolloutTransition{
		Time: t.cmd.GetTime(), Action: action, From: from, To: ro.GetStage(),
		CanaryBasisPoints: CanaryShare(ro), Actor: t.cmd.GetActor().GetTokenId(), Automatic: automatic, Reason: reason,
	}
	ro.Transitions = append(ro.Transitions, tr)
	if n := len(ro.Transitions); n > limits.RolloutTransitions {
		ro.Transitions = ro.Transitions[n-limits.RolloutTransitions:]
	}
	t.detail = DescribeTransition(tr)
}

// DescribeTransition words a rollout's change for the admin log:
// "promote: shadow → canary 50%", "rollback (automatic): shadow →
// rolled_back: gate …".
func DescribeTransition(tr *configv1.RolloutTransition) string {
	var b strings.Builder
	b.WriteString(tr.GetAction())
	if tr.GetAutomatic() {
		b.WriteString(" (automatic)")
	}
	b.WriteString(": ")
	if tr.GetFrom() != configv1.RolloutStage_ROLLOUT_STAGE_UNSPECIFIED {
		b.WriteString(StageName(tr.GetFrom()) + " → ")
	}
	b.WriteString(StageName(tr.GetTo()))
	if bp := tr.GetCanaryBasisPoints(); bp > 0 {
		b.WriteString(" " + FormatShare(bp))
	}
	if tr.GetReason() != "" {
		b.WriteString(": " + tr.GetReason())
	}
	return b.String()
}

// FormatShare writes basis points as a percentage ("5%", "12.5%").
func FormatShare(bp uint32) string {
	s := fmt.Sprintf("%d.%02d", bp/100, bp%100)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// rolloutChange applies a RolloutChange: see fsmv1.RolloutChange.
func (t *txn) rolloutChange(c *fsmv1.RolloutChange) (*fsmv1.Resource, *fsmv1.Error) {
	cur, ok := t.get(resource.Rollout, c.GetRollout())
	if !ok {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "rollout %q does not exist", c.GetRollout())
	}
	ro := proto.CloneOf(cur.GetRollout())
	if ro.GetStage() != c.GetExpectStage() || ro.GetCanaryStep() != c.GetExpectStep() {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_ABORTED, "rollout %q is at %s, not %s: it moved on since; look again (gwctl rollout status %s)",
			c.GetRollout(), where(ro.GetStage(), ro.GetCanaryStep(), ro), where(c.GetExpectStage(), c.GetExpectStep(), ro), c.GetRollout())
	}
	from := ro.GetStage()
	active := Active(ro)
	if !active && c.GetAction() != fsmv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK {
		return nil, failed("rollout %q is over (%s)", c.GetRollout(), StageName(ro.GetStage()))
	}
	var action string
	switch c.GetAction() {
	case fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE:
		action = "promote"
		steps := ro.GetPlan().GetCanaryBasisPoints()
		switch {
		case ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_SHADOW && len(steps) > 0:
			ro.Stage, ro.CanaryStep = configv1.RolloutStage_ROLLOUT_STAGE_CANARY, 0
		case ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_CANARY && int(ro.GetCanaryStep())+1 < len(steps):
			ro.CanaryStep++
		default:
			ro.Stage = configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE
		}
		ro.StageStartTime = t.cmd.GetTime()
	case fsmv1.RolloutAction_ROLLOUT_ACTION_PAUSE:
		action = "pause"
		ro.Paused = true
	case fsmv1.RolloutAction_ROLLOUT_ACTION_RESUME:
		action = "resume"
		ro.Paused = false
		ro.StageStartTime = t.cmd.GetTime()
	case fsmv1.RolloutAction_ROLLOUT_ACTION_ABORT:
		action = "abort"
		ro.Stage = configv1.RolloutStage_ROLLOUT_STAGE_ABORTED
		ro.Reason = c.GetReason()
	case fsmv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK:
		action = "rollback"
		if !active && ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE {
			return nil, failed("rollout %q is over (%s)", c.GetRollout(), StageName(ro.GetStage()))
		}
		ro.Stage = configv1.RolloutStage_ROLLOUT_STAGE_ROLLED_BACK
		ro.Reason = c.GetReason()
	default:
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "unknown rollout action %v", c.GetAction())
	}
	if ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_CANARY {
		ro.CanaryStep = 0
	}
	t.transition(ro, action, from, c.GetAutomatic(), c.GetReason())
	// Data planes see the stage and the canary share; a pause or a
	// resume changes neither.
	if ro.GetStage() != from || ro.GetCanaryStep() != cur.GetRollout().GetCanaryStep() {
		t.configChanged = true
	}
	r := resource.Wrap(ro)
	t.stamp(cur, r)
	t.insert(r)
	switch {
	case ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE:
		setRes, ok := t.get(resource.PolicySet, ro.GetPolicySet())
		if !ok {
			return nil, failed("policy set %q no longer exists", ro.GetPolicySet())
		}
		if err := t.completeRollout(ro, setRes.GetPolicySet()); err != nil {
			return nil, err
		}
	case from == configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE:
		if err := t.revertRollout(ro); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// where words a stage and canary step ("canary 25%", "shadow").
func where(stage configv1.RolloutStage, step uint32, ro *configv1.Rollout) string {
	if stage != configv1.RolloutStage_ROLLOUT_STAGE_CANARY {
		return StageName(stage)
	}
	steps := ro.GetPlan().GetCanaryBasisPoints()
	if int(step) < len(steps) {
		return "canary " + FormatShare(steps[step])
	}
	return fmt.Sprintf("canary step %d", step+1)
}

// completeRollout writes the candidate as the set's next version.
func (t *txn) completeRollout(ro *configv1.Rollout, set *configv1.PolicySet) *fsmv1.Error {
	if set.GetVersion() != ro.GetBaseVersion() {
		return failed("policy set %q is at version %d, not %d as when the rollout started", ro.GetPolicySet(), set.GetVersion(), ro.GetBaseVersion())
	}
	ps := CandidateSet(set, ro)
	ps.Version = set.GetVersion() // preparePolicySet counts the new source
	t.completing = ro.GetMeta().GetName()
	defer func() { t.completing = "" }()
	_, err := t.put(&fsmv1.Put{Resource: resource.Wrap(ps), Mode: fsmv1.WriteMode_WRITE_MODE_UPDATE})
	return err
}

// revertRollout writes back the version a completed rollout replaced, if
// the set is still at the rollout's version.
func (t *txn) revertRollout(ro *configv1.Rollout) *fsmv1.Error {
	setRes, ok := t.get(resource.PolicySet, ro.GetPolicySet())
	if !ok {
		return failed("policy set %q no longer exists", ro.GetPolicySet())
	}
	set := setRes.GetPolicySet()
	if set.GetVersion() != ro.GetBaseVersion()+1 || set.GetSource() != ro.GetSource() {
		return failed("policy set %q changed since rollout %s completed (it is at version %d); roll it back with gwctl policy rollback %s --to %d",
			ro.GetPolicySet(), ro.GetMeta().GetName(), set.GetVersion(), ro.GetPolicySet(), ro.GetBaseVersion())
	}
	h, ok := t.get(resource.PolicyHistory, ro.GetPolicySet())
	var prev *configv1.PolicyVersion
	if ok {
		for _, v := range h.GetPolicyHistory().GetVersions() {
			if v.GetVersion() == ro.GetBaseVersion() {
				prev = v
			}
		}
	}
	if prev == nil {
		return failed("policy set %q no longer keeps version %d", ro.GetPolicySet(), ro.GetBaseVersion())
	}
	ps := proto.CloneOf(set)
	ps.Source, ps.Filename, ps.Restores = prev.GetSource(), prev.GetFilename(), prev.GetVersion()
	ps.Message = "rollback of rollout " + ro.GetMeta().GetName()
	if ro.GetReason() != "" {
		ps.Message += ": " + ro.GetReason()
	}
	if len(ps.Message) > limits.PolicyMessage {
		ps.Message = cut(ps.Message, limits.PolicyMessage)
	}
	_, err := t.put(&fsmv1.Put{Resource: resource.Wrap(ps), Mode: fsmv1.WriteMode_WRITE_MODE_UPDATE})
	return err
}
