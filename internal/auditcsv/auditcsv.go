// Package auditcsv writes audit records as CSV, the one format both
// `gwctl audit query -o csv` and the control plane's web view download, so
// that a spreadsheet opens the same columns from either. Cells that a
// spreadsheet would read as a formula are escaped (see Cell).
package auditcsv

import (
	"encoding/csv"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"time"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Header is the first row: one column per field of Row.
var Header = []string{"time", "dataplane", "sequence", "agent", "user", "protocol", "method", "upstream", "tool",
	"decision", "policies", "outcome", "reason", "mode", "snapshot_version", "latency_ms", "upstream_latency_ms",
	"source_ip", "upstream_error", "response_bytes", "arguments_json", "hash", "target_own", "findings", "limits"}

// Cell returns s safe to open in a spreadsheet: a value starting with =,
// +, -, @, a tab or a carriage return would be read as a formula (CSV
// injection: an agent's argument "=HYPERLINK(…)" running in an auditor's
// spreadsheet), so it is prefixed with a single quote, which spreadsheets
// show as text. Every other value is unchanged.
func Cell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// Actor is who a record is about, for tables and CSV: the agent of a
// call, the admin token of an admin write or an approval of learned
// values.
func Actor(r *auditv1.Record) string {
	if w := r.GetAdminWrite(); w != nil {
		return w.GetTokenId()
	}
	if ev := r.GetRolloutEvent(); ev != nil {
		return ev.GetWrite().GetTokenId()
	}
	if l := r.GetLearned(); l != nil && len(l.GetEntries()) > 0 {
		return l.GetEntries()[0].GetTokenId()
	}
	return r.GetAgent()
}

// Target is what a record is about: the tool (or other target) of a call,
// the resource of an admin write, the source of a refusal summary, the
// version of a configuration record.
func Target(r *auditv1.Record) string {
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
	case r.GetRolloutEvent() != nil:
		ev := r.GetRolloutEvent()
		t := "rollout " + ev.GetRollout() + " " + ev.GetAction()
		if ev.GetAutomatic() {
			t += " (automatic)"
		}
		t += ": " + ev.GetToStage()
		if ev.GetReason() != "" {
			t += ": " + ev.GetReason()
		}
		return t
	case r.GetTask().GetState() != "":
		// A remote agent's task: the agent and the task's last state (the
		// ids are in -o json).
		return r.GetTool() + " (" + r.GetTask().GetState() + ")"
	case r.GetRolloutSummary() != nil:
		s := r.GetRolloutSummary()
		var calls uint64
		for _, c := range s.GetCounts() {
			calls += c.GetCalls()
		}
		return "rollout " + s.GetRollout() + " " + s.GetStage() + ": " + strconv.FormatUint(calls, 10) + " calls"
	case r.GetLearned() != nil:
		return learnedTarget(r.GetLearned())
	case r.GetAlert() != nil:
		al := r.GetAlert()
		return "alert " + al.GetAlert() + " (" + al.GetRule() + ") " + al.GetOutcome() + " for " + al.GetRecordId()
	}
	return r.GetTool()
}

// Findings summarises what runtime inspection found in a call, one entry
// per finding name with its action, rule and mode, and how many:
// "pii.email redact by pii-out ×3; rows.ceiling block by rows (shadow)".
// Locations are in the record itself (gwctl audit query -o json).
func Findings(r *auditv1.Record) string {
	type key struct{ name, action, rule, mode string }
	var order []key
	count := map[key]int{}
	for _, f := range r.GetFindings() {
		k := key{f.GetDetector() + "." + f.GetKind(), f.GetAction(), f.GetRule(), f.GetMode()}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, 0, len(order)+1)
	for _, k := range order {
		s := k.name + " " + k.action + " by " + k.rule
		if k.mode == "shadow" {
			s += " (shadow)"
		}
		if n := count[k]; n > 1 {
			s += " ×" + strconv.Itoa(n)
		}
		parts = append(parts, s)
	}
	if n := r.GetFindingsOmitted(); n > 0 {
		parts = append(parts, "and "+strconv.FormatUint(uint64(n), 10)+" more")
	}
	return strings.Join(parts, "; ")
}

// Limits summarises the rate limits and budgets a call met: the limits
// that refused it (reason rate_limited) or, in shadow mode, would have,
// and the shadow budgets that would have refused it although it ran:
// "rate limits per-agent-tool (shadow); shadow budgets team-monthly". A
// budget that refused a call is in its reason (budget_exhausted).
func Limits(r *auditv1.Record) string {
	var parts []string
	if l := r.GetRateLimits(); len(l) > 0 {
		s := "rate limits " + strings.Join(l, ", ")
		if r.GetRateLimitShadow() {
			s += " (shadow)"
		}
		parts = append(parts, s)
	}
	if b := r.GetShadowBudgets(); len(b) > 0 {
		parts = append(parts, "shadow budgets "+strings.Join(b, ", "))
	}
	return strings.Join(parts, "; ")
}

// learnedTarget names the first value a learned record adds or removes,
// and how many more there are.
func learnedTarget(l *auditv1.LearnedDetail) string {
	n := len(l.GetEntries()) + int(l.GetUnlisted())
	t := strconv.Itoa(n) + " learned value(s)"
	if n > 0 && len(l.GetEntries()) > 0 {
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
}

// Row returns r's cells in Header's order (the agent column holds Actor,
// the tool column Target), each escaped with Cell.
func Row(r *auditv1.Record) []string {
	ms := func(d interface{ AsDuration() time.Duration }) string {
		return strconv.FormatFloat(float64(d.AsDuration().Microseconds())/1000, 'f', 3, 64)
	}
	ts := ""
	if r.GetTime() != nil {
		ts = r.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	row := []string{ts, r.GetDataplane(), strconv.FormatUint(r.GetSequence(), 10), Actor(r), r.GetUser(),
		r.GetProtocol(), r.GetMethod(), r.GetUpstream(), Target(r), r.GetDecision(), strings.Join(r.GetPolicies(), " "),
		r.GetOutcome(), r.GetReason(), r.GetMode(), strconv.FormatUint(r.GetSnapshotVersion(), 10), ms(r.GetLatency()),
		ms(r.GetUpstreamLatency()), r.GetSourceIp(), strconv.FormatBool(r.GetUpstreamError()),
		strconv.FormatInt(r.GetResponseBytes(), 10), r.GetArgumentsJson(), hex.EncodeToString(r.GetHash()), r.GetTargetOwn(), Findings(r), Limits(r)}
	for i, c := range row {
		row[i] = Cell(c)
	}
	return row
}

// Writer writes records as CSV: the header first, then a row per record.
// It is not safe for concurrent use.
type Writer struct {
	w      *csv.Writer
	header bool
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: csv.NewWriter(w)} }

// Write writes the header (before the first batch) and a row per record,
// and flushes.
func (w *Writer) Write(records []*auditv1.Record) error {
	if !w.header {
		if err := w.w.Write(Header); err != nil {
			return err
		}
		w.header = true
	}
	for _, r := range records {
		if err := w.w.Write(Row(r)); err != nil {
			return err
		}
	}
	w.w.Flush()
	return w.w.Error()
}
