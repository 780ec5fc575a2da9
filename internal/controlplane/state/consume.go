package state

import (
	"fmt"
	"maps"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
)

// The leader's work: ConsumeAudit (a batch of an audit consumer) and
// SettleAlert (a delivery attempt). Neither is an admin write: they carry
// no request id, leave no admin event and are not deduplicated by request
// id. Each is instead guarded by a count it must continue — the cursor's
// batches, the alert's attempts — so that a command proposed twice (a
// retried proposal, a leader that has not noticed it was deposed) is
// applied once and refused (ABORTED) the second time. What they change
// that matters to an auditor is recorded in the control plane's audit
// chain as the state's derived record (see DerivedRecord).

// maxListedEntries bounds the entries of one derived learned record, so it
// fits an audit frame (auditframe.MaxRecordSize).
const maxListedEntries = 1000

// DerivedRecord is the audit record the command that produced s asks the
// control plane's chain to hold instead of its admin write's record (nil
// when it asks for none): the values a learned list learned or an operator
// approved, an alert sent or given up. It is only meaningful for the state
// Apply returned; a state read from a snapshot has none.
func (s *State) DerivedRecord() *auditv1.Record { return s.derived }

// applyLeaderWork applies ConsumeAudit and SettleAlert.
func applyLeaderWork(s *State, index uint64, cmd *fsmv1.Command) (*State, *fsmv1.Result) {
	next := *s
	next.index = index
	next.derived = nil
	result := &fsmv1.Result{Index: index}
	if err := resource.ValidateCommand(cmd); err != nil {
		result.Error = errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
		return &next, result
	}
	t := newTxn(s, index, cmd)
	if err := t.gate(); err != nil {
		result.Error = err
		return &next, result
	}
	var (
		rec  *auditv1.Record
		cerr *fsmv1.Error
	)
	switch op := cmd.GetOp().(type) {
	case *fsmv1.Command_ConsumeAudit:
		rec, cerr = t.consume(op.ConsumeAudit)
	case *fsmv1.Command_SettleAlert:
		rec, cerr = t.settle(op.SettleAlert)
	}
	if cerr != nil {
		result.Error = cerr
		return &next, result
	}
	t.commitTo(&next)
	if t.configChanged {
		next.configVersion = index
		next.configTime = cmd.GetTime()
	}
	if rec != nil {
		rec.Time = cmd.GetTime()
		next.derived = rec
	}
	return &next, result
}

func aborted(format string, args ...any) *fsmv1.Error {
	return errf(fsmv1.ErrorCode_ERROR_CODE_ABORTED, format, args...)
}

// consume applies one batch of an audit consumer: its learned values,
// seeded lists and alerts, and the move of its cursor, all or nothing.
func (t *txn) consume(c *fsmv1.ConsumeAudit) (*auditv1.Record, *fsmv1.Error) {
	name := c.GetConsumer()
	cur := &configv1.AuditCursor{Meta: &configv1.ResourceMeta{Name: name}}
	old, exists := t.get(resource.AuditCursor, name)
	if exists {
		cur = proto.CloneOf(old.GetAuditCursor())
	}
	if cur.GetBatches() != c.GetAfterBatch() {
		return nil, aborted("audit consumer %q has consumed %d batches, not %d: another batch was applied first; read from its cursor again", name, cur.GetBatches(), c.GetAfterBatch())
	}
	if !exists && c.GetAfterBatch() != 0 {
		return nil, aborted("audit consumer %q has no cursor yet", name)
	}
	if !exists {
		old = nil
	}

	var entries []*auditv1.LearnedEntry
	var dropped, unlisted uint32
	edits := map[string]*learnedEdit{}
	seeded := map[string]bool{}
	for _, sd := range c.GetSeeded() {
		e, ok := t.edit(edits, sd.GetList())
		if !ok || e.l.GetGeneration() != sd.GetGeneration() {
			return nil, aborted("learned list %q changed since the batch was read", sd.GetList())
		}
		e.l.Seeded, e.changed = true, true
		seeded[sd.GetList()] = true
	}
	for _, ch := range c.GetLearned() {
		e, ok := t.edit(edits, ch.GetList())
		if !ok || e.l.GetGeneration() != ch.GetGeneration() {
			return nil, aborted("learned list %q changed since the batch was read", ch.GetList())
		}
		if err := checkScope(ch, e.l); err != nil {
			return nil, err
		}
		change := "learned"
		if seeded[ch.GetList()] {
			change = "seeded"
		}
		for _, v := range ch.GetAdd() {
			added, full := e.add(ch.GetScope(), v.GetValue())
			switch {
			case full:
				dropped++
			case added && len(entries) < maxListedEntries:
				entries = append(entries, &auditv1.LearnedEntry{List: ch.GetList(), Scope: ch.GetScope(), Value: v.GetValue(), Change: change, RecordId: v.GetRecordId()})
			case added:
				unlisted++
			}
		}
		for _, v := range ch.GetRemove() {
			e.remove(ch.GetScope(), v)
		}
	}
	for _, list := range slices.Sorted(maps.Keys(edits)) {
		t.storeEdit(edits[list])
	}

	var alertsDropped []*configv1.Alert
	if len(c.GetAlerts()) > 0 {
		queued := t.count(resource.Alert)
		for _, a := range c.GetAlerts() {
			if _, ok := t.get(resource.Alert, a.GetMeta().GetName()); ok {
				continue // queued already
			}
			if queued >= limits.Outbox {
				alertsDropped = append(alertsDropped, a)
				continue
			}
			a = proto.CloneOf(a)
			a.Attempts, a.LastError = 0, ""
			if a.GetNextAttemptTime() == nil {
				a.NextAttemptTime = t.cmd.GetTime()
			}
			r := resource.Wrap(a)
			t.stamp(nil, r)
			t.insert(r)
			queued++
		}
	}

	cur.Marks = mergeMarks(cur.GetMarks(), c.GetMarks())
	if len(cur.Marks) > limits.AuditChains {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, "audit consumer %q would track more than %d chains", name, limits.AuditChains)
	}
	cur.Batches++
	cur.Records += c.GetRecords()
	r := resource.Wrap(cur)
	t.stamp(old, r)
	t.insert(r)

	switch {
	case len(entries) > 0 || dropped > 0 || unlisted > 0:
		return &auditv1.Record{
			Kind: auditv1.EventKind_EVENT_KIND_LEARNED, Protocol: "control-plane", Method: "audit consumer " + name, Outcome: "ok",
			Detail: &auditv1.Record_Learned{Learned: &auditv1.LearnedDetail{Entries: entries, Dropped: dropped, Unlisted: unlisted}},
		}, nil
	case len(alertsDropped) > 0:
		a := alertsDropped[0]
		return &auditv1.Record{
			Kind: auditv1.EventKind_EVENT_KIND_ALERT, Protocol: "control-plane", Method: "audit consumer " + name, Outcome: "error", Reason: "outbox_full",
			Detail: &auditv1.Record_Alert{Alert: &auditv1.AlertDetail{
				Rule: a.GetRule(), Alert: a.GetMeta().GetName(), RecordId: a.GetRecordId(), Outcome: "dropped",
				Error: fmt.Sprintf("the outbox holds %d alerts, its limit: %d alerts of this batch were dropped; deliveries are failing, see gwctl alert list", limits.Outbox, len(alertsDropped)),
			}},
		}, nil
	}
	return nil, nil
}

// mergeMarks returns cur with the marks of batch set, sorted by chain.
func mergeMarks(cur, batch []*configv1.AuditMark) []*configv1.AuditMark {
	byChain := make(map[string]uint64, len(cur)+len(batch))
	for _, m := range cur {
		byChain[m.GetDataplane()] = m.GetNext()
	}
	for _, m := range batch {
		byChain[m.GetDataplane()] = max(byChain[m.GetDataplane()], m.GetNext())
	}
	out := make([]*configv1.AuditMark, 0, len(byChain))
	for _, dp := range slices.Sorted(maps.Keys(byChain)) {
		out = append(out, &configv1.AuditMark{Dataplane: dp, Next: byChain[dp]})
	}
	return out
}

// settle records one delivery attempt of an outbox alert.
func (t *txn) settle(s *fsmv1.SettleAlert) (*auditv1.Record, *fsmv1.Error) {
	old, ok := t.get(resource.Alert, s.GetName())
	if !ok {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "alert %q is not in the outbox (sent, given up or dropped already)", s.GetName())
	}
	a := proto.CloneOf(old.GetAlert())
	if a.GetAttempts() != s.GetAttempt()-1 {
		return nil, aborted("alert %q has had %d attempts, so this is not attempt %d", s.GetName(), a.GetAttempts(), s.GetAttempt())
	}
	a.Attempts = s.GetAttempt()
	switch s.GetOutcome() {
	case fsmv1.AlertOutcome_ALERT_OUTCOME_RETRY:
		a.LastError = s.GetError()
		a.NextAttemptTime = s.GetNextAttemptTime()
		if a.NextAttemptTime == nil {
			a.NextAttemptTime = t.cmd.GetTime()
		}
		r := resource.Wrap(a)
		t.stamp(old, r)
		t.insert(r)
		return nil, nil
	case fsmv1.AlertOutcome_ALERT_OUTCOME_SENT, fsmv1.AlertOutcome_ALERT_OUTCOME_GAVE_UP:
		t.remove(resource.Alert, s.GetName())
		rec := &auditv1.Record{
			Kind: auditv1.EventKind_EVENT_KIND_ALERT, Protocol: "control-plane", Method: "alert delivery", Outcome: "ok",
			Detail: &auditv1.Record_Alert{Alert: &auditv1.AlertDetail{
				Rule: a.GetRule(), Alert: a.GetMeta().GetName(), RecordId: a.GetRecordId(), Outcome: "sent",
				Attempts: a.GetAttempts(), StatusCode: s.GetStatusCode(),
			}},
		}
		if s.GetOutcome() == fsmv1.AlertOutcome_ALERT_OUTCOME_GAVE_UP {
			rec.Outcome, rec.Reason = "error", "gave_up"
			rec.GetAlert().Outcome = "gave_up"
			rec.GetAlert().Error = s.GetError()
		}
		return rec, nil
	}
	return nil, errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "unknown alert outcome %v", s.GetOutcome())
}

// changeLearned applies an operator's approvals and forgets.
func (t *txn) changeLearned(c *fsmv1.ChangeLearned) (*fsmv1.Resource, *auditv1.Record, *fsmv1.Error) {
	edits := map[string]*learnedEdit{}
	var entries []*auditv1.LearnedEntry
	unlisted := uint32(0)
	note := func(e *auditv1.LearnedEntry) {
		if len(entries) < maxListedEntries {
			entries = append(entries, e)
		} else {
			unlisted++
		}
	}
	for _, ch := range c.GetChanges() {
		e, ok := t.edit(edits, ch.GetList())
		if !ok {
			return nil, nil, errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "value list %q does not learn (gwctl valuelist learn %s …)", ch.GetList(), ch.GetList())
		}
		if err := checkScope(ch, e.l); err != nil {
			return nil, nil, err
		}
		for _, v := range ch.GetAdd() {
			added, full := e.add(ch.GetScope(), v.GetValue())
			if full {
				return nil, nil, failed("value list %q cannot learn more in scope %s: a scope holds at most %d values and a list %d in all; forget some first (gwctl valuelist forget)",
					ch.GetList(), ch.GetScope(), limits.ListValues, limits.LearnedValues)
			}
			if added {
				note(&auditv1.LearnedEntry{List: ch.GetList(), Scope: ch.GetScope(), Value: v.GetValue(), Change: "approved", RecordId: v.GetRecordId(),
					TokenId: t.cmd.GetActor().GetTokenId(), RequestId: t.cmd.GetRequestId()})
			}
		}
		for _, v := range ch.GetRemove() {
			if e.remove(ch.GetScope(), v) {
				note(&auditv1.LearnedEntry{List: ch.GetList(), Scope: ch.GetScope(), Value: v, Change: "forgotten",
					TokenId: t.cmd.GetActor().GetTokenId(), RequestId: t.cmd.GetRequestId()})
			}
		}
	}
	lists := slices.Sorted(maps.Keys(edits))
	for _, list := range lists {
		t.storeEdit(edits[list])
	}
	stored, _ := t.get(resource.ListLearning, lists[0])
	if len(entries) == 0 {
		return stored, nil, nil // nothing changed: the admin write's record says so
	}
	rec := &auditv1.Record{
		Time: t.cmd.GetTime(), Kind: auditv1.EventKind_EVENT_KIND_LEARNED, Protocol: "admin", Method: t.cmd.GetMethod(), Outcome: "ok",
		Detail: &auditv1.Record_Learned{Learned: &auditv1.LearnedDetail{Entries: entries, Unlisted: unlisted}},
	}
	return stored, rec, nil
}

// count returns the number of resources of kind k in the transaction.
func (t *txn) count(k resource.Kind) int {
	n := 0
	t.each(k, func(*fsmv1.Resource) bool { n++; return true })
	return n
}

// describeLists names the lists of changes for an admin event: the first
// in name order, and how many more.
func describeLists(changes []*fsmv1.LearnedChange) string {
	var names []string
	for _, ch := range changes {
		names = append(names, ch.GetList())
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return ""
	}
	if len(names) > 1 {
		return fmt.Sprintf("%s (+%d)", names[0], len(names)-1)
	}
	return names[0]
}
