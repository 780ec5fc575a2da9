package gwctl

import (
	"strconv"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// recordActor is who a record is about, for tables and CSV: the agent of
// a call, the admin token of an admin write.
func recordActor(r *auditv1.Record) string {
	if w := r.GetAdminWrite(); w != nil {
		return w.GetTokenId()
	}
	return r.GetAgent()
}

// recordTarget is what a record is about: the tool (or other target) of a
// call, the resource of an admin write, the source of a refusal summary,
// the version of a configuration record, a remote agent with the state of
// its task.
func recordTarget(r *auditv1.Record) string {
	switch {
	case r.GetAdminWrite() != nil:
		w := r.GetAdminWrite()
		t := w.GetOp()
		if w.GetResourceKind() != "" {
			t += " " + w.GetResourceKind() + "/" + w.GetResourceName()
		}
		return t
	case r.GetRefusalSummary() != nil:
		s := r.GetRefusalSummary()
		return strconv.FormatUint(s.GetCount(), 10) + " from " + s.GetSourceNetwork()
	case r.GetApplied() != nil:
		return "config version " + strconv.FormatUint(r.GetApplied().GetVersion(), 10)
	case r.GetTask().GetState() != "":
		// A remote agent's task: the agent and the task's last state (the
		// ids are in -o json).
		return r.GetTool() + " (" + r.GetTask().GetState() + ")"
	}
	return r.GetTool()
}
