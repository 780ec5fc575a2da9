package raftstore

import (
	"encoding/json"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"google.golang.org/protobuf/proto"
)

// Admin writes are audited in the same tamper-evident store as calls.
//
// Decision: the state machine itself writes the record, while it applies
// the write, into a chain of the audit store named
// auditstore.ControlPlane ("control-plane"), beside the data planes'
// chains. Its sequence, prev_hash and hash are computed in apply from the
// node's store (auditstore.AppendNext) and the record holds only what the
// committed command and its result say (the command's time, actor, method,
// the resource's kind and name, the outcome), so every replica computes
// the same chain without a second Raft entry, and a replayed entry is
// recognized by its Raft index (the record's snapshot_version). Query,
// verify and attest treat it like any data plane's chain. The alternative,
// having the leader propose AppendAudit records after each write, would
// leave a window in which a write is committed but not yet audited, and
// would need its own retry when the leader dies in between.
//
// A web sign-in (op "sign-in", kind "session") is recorded the same way,
// with the address it came from.
//
// A record never carries a resource's contents (a secret's value, a
// token's hash), nor the refusal's message: only the error code.

// adminRecord is the audit record of an admin write, before AppendNext
// places it in the chain. Once every voter supports
// clusterversion.TypedAdminAudit (typed) it is an EVENT_KIND_ADMIN_WRITE
// record with the write in its AdminWrite detail; before, the write is
// squeezed into call fields as older versions wrote it, so that every
// replica of a mixed-version cluster computes the same chain.
func adminRecord(ev *configv1.AdminEvent, typed bool) *auditv1.Record {
	r := &auditv1.Record{
		Time:     ev.GetTime(),
		Protocol: "admin",
		Method:   ev.GetMethod(),
		Outcome:  "ok",
		SourceIp: ev.GetSourceIp(),
	}
	if ev.GetErrorCode() != "" {
		r.Outcome = "refused"
		r.Reason = strings.ToLower(ev.GetErrorCode())
	}
	if typed {
		r.Kind = auditv1.EventKind_EVENT_KIND_ADMIN_WRITE
		r.Detail = &auditv1.Record_AdminWrite{AdminWrite: &auditv1.AdminWrite{
			Op: ev.GetOp(), ResourceKind: ev.GetKind(), ResourceName: ev.GetName(),
			TokenId: ev.GetActor().GetTokenId(), Role: roleName(ev.GetActor().GetRole()),
			RequestId: ev.GetRequestId(), ErrorCode: r.Reason,
		}}
		return r
	}
	r.Agent = ev.GetActor().GetTokenId()
	r.Tool = ev.GetOp()
	if ev.GetKind() != "" {
		r.Tool = ev.GetOp() + " " + ev.GetKind()
	}
	args := struct {
		Op        string `json:"op"`
		Kind      string `json:"kind,omitempty"`
		Name      string `json:"name,omitempty"`
		Role      string `json:"role,omitempty"`
		RequestID string `json:"request_id,omitempty"`
	}{ev.GetOp(), ev.GetKind(), ev.GetName(), roleName(ev.GetActor().GetRole()), ev.GetRequestId()}
	if b, err := json.Marshal(args); err == nil {
		r.ArgumentsJson = string(b)
	}
	return r
}

func roleName(r configv1.Role) string {
	if r == configv1.Role_ROLE_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// auditWrite appends the audit record of the command applied at index to
// the control plane's chain: the record the command derived (values a
// learned list learned or an operator approved, an alert sent or given
// up: state.DerivedRecord), else the record of its admin write. A write
// that left neither (a deduplicated retry, a batch of an audit consumer
// that changed only its cursor) has none. A failure to write is this
// node's disk: the other replicas hold the record, and it cannot undo the
// write.
func (f *FSM) auditWrite(index uint64, st *state.State) {
	if f.audit == nil {
		return
	}
	if rec := st.DerivedRecord(); rec != nil {
		_, _ = f.audit.AppendNext(auditstore.ControlPlane, index, proto.CloneOf(rec))
		return
	}
	evs, _ := st.AdminEvents(index+1, 1)
	if len(evs) == 0 || evs[0].GetIndex() != index {
		return
	}
	typed := clusterversion.Supports(st.Voters(), clusterversion.TypedAdminAudit)
	rec := adminRecord(evs[0], typed)
	if typed {
		rolloutRecord(rec, evs[0], st)
	}
	_, _ = f.audit.AppendNext(auditstore.ControlPlane, index, rec)
}

// rolloutRecord makes the record of a rollout's start or change of stage
// an EVENT_KIND_ROLLOUT record: the admin write, and the change as the
// rollout's newest transition says it (which alerting reads; see
// rollout.AlertOf). Other writes, refusals and deletes keep their
// EVENT_KIND_ADMIN_WRITE record. It reads only replicated state, so every
// replica writes the same record.
func rolloutRecord(r *auditv1.Record, ev *configv1.AdminEvent, st *state.State) {
	if ev.GetKind() != string(resource.Rollout) || ev.GetErrorCode() != "" || ev.GetOp() == "delete" {
		return
	}
	res, ok := st.Get(resource.Rollout, ev.GetName())
	if !ok || len(res.GetRollout().GetTransitions()) == 0 {
		return
	}
	ro := res.GetRollout()
	tr := ro.GetTransitions()[len(ro.GetTransitions())-1]
	from := ""
	if tr.GetFrom() != configv1.RolloutStage_ROLLOUT_STAGE_UNSPECIFIED {
		from = state.StageName(tr.GetFrom())
	}
	r.Kind = auditv1.EventKind_EVENT_KIND_ROLLOUT
	r.Detail = &auditv1.Record_RolloutEvent{RolloutEvent: &auditv1.RolloutEvent{
		Write: r.GetAdminWrite(), Rollout: ro.GetMeta().GetName(), PolicySet: ro.GetPolicySet(),
		Action: tr.GetAction(), FromStage: from, ToStage: state.StageName(tr.GetTo()),
		CanaryBasisPoints: tr.GetCanaryBasisPoints(), Reason: tr.GetReason(), Automatic: tr.GetAutomatic(),
	}}
}
