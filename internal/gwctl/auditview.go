package gwctl

import (
	"strconv"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// recordActor is who a record is about, for tables and CSV: the agent of
// a call, the admin token of an admin write or an approval.
func recordActor(r *auditv1.Record) string {
	if w := r.GetAdminWrite(); w != nil {
		return w.GetTokenId()
	}
	if l := r.GetLearned(); l != nil && len(l.GetEntries()) > 0 {
		return l.GetEntries()[0].GetTokenId()
	}
	return r.GetAgent()
}

// recordTarget is what a record is about: the tool (or other target) of a
// call, the resource of an admin write, the source of a refusal summary,
// the version of a configuration record.
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
	case r.GetLearned() != nil:
		l := r.GetLearned()
		n := len(l.GetEntries()) + int(l.GetUnlisted())
		t := strconv.Itoa(n) + " learned value(s)"
		if n > 0 {
			e := l.GetEntries()[0]
			t = e.GetChange() + " " + strconv.Quote(e.GetValue()) + " in " + e.GetList() + " " + e.GetScope()
			if n > 1 {
				t += " (+" + strconv.Itoa(n-1) + ")"
			}
		}
		if l.GetDropped() > 0 {
			t += ", " + strconv.FormatUint(uint64(l.GetDropped()), 10) + " dropped (full)"
		}
		return t
	case r.GetAlert() != nil:
		al := r.GetAlert()
		return "alert " + al.GetAlert() + " (" + al.GetRule() + ") " + al.GetOutcome() + " for " + al.GetRecordId()
	}
	return r.GetTool()
}
