package limits

import (
	"fmt"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Learned lists, alerts and the audit consumers' cursors: what the
// leader's audit consumer derives from audit records, and the rules that
// say what it derives.
const (
	// LearnedSets bounds the scopes (agents, teams, global) one learned
	// list keeps a set for.
	LearnedSets = 10_000
	// LearnedValues bounds the values one learned list keeps in all its
	// sets together; one set holds at most ListValues.
	LearnedValues = 50_000
	// AlertMatches bounds the events one alert rule matches.
	AlertMatches = 16
	// AlertText bounds an alert's reason and an attempt's error.
	AlertText = 1024
	// AlertPolicies bounds the policies and tags an alert names.
	AlertPolicies = 64
	// Outbox bounds the alerts waiting to be delivered; while it is full,
	// new alerts are dropped (and the drop is audited).
	Outbox = 10_000
	// AuditChains bounds the chains (data planes) an audit cursor tracks.
	AuditChains = 100_000
	// ConsumeBatch bounds the learned changes and the alerts of one batch
	// of an audit consumer, and the changes of one operator command.
	ConsumeBatch = 10_000
)

// ListLearning checks a learned list, its learned sets included.
func ListLearning(l *configv1.ListLearning) error {
	if err := Meta(l.GetMeta()); err != nil {
		return err
	}
	if len(l.GetTool()) > Name || len(l.GetArgument()) > Name {
		return exceeded("learning", "tool and argument are at most %d bytes", Name)
	}
	if len(l.GetSets()) > LearnedSets {
		return exceeded("sets", "at most %d scopes", LearnedSets)
	}
	total := 0
	for i, s := range l.GetSets() {
		if len(s.GetScope()) > Name+8 {
			return exceeded(fmt.Sprintf("sets[%d].scope", i), "at most %d bytes", Name+8)
		}
		if len(s.GetValues()) > ListValues {
			return exceeded(fmt.Sprintf("sets[%d].values", i), "at most %d values", ListValues)
		}
		total += len(s.GetValues())
		for j, v := range s.GetValues() {
			if len(v) > ListValue {
				return exceeded(fmt.Sprintf("sets[%d].values[%d]", i, j), "at most %d bytes", ListValue)
			}
		}
	}
	if total > LearnedValues {
		return exceeded("sets", "at most %d values in all scopes together", LearnedValues)
	}
	return nil
}

// AlertRule checks an alert rule.
func AlertRule(r *configv1.AlertRule) error {
	if err := Meta(r.GetMeta()); err != nil {
		return err
	}
	if len(r.GetMatch()) > AlertMatches {
		return exceeded("match", "at most %d", AlertMatches)
	}
	for i, m := range r.GetMatch() {
		if len(m.GetPolicyDeny().GetTag()) > Name {
			return exceeded(fmt.Sprintf("match[%d].policy_deny.tag", i), "at most %d bytes", Name)
		}
	}
	w := r.GetWebhook()
	switch {
	case len(w.GetUrl()) > URL:
		return exceeded("webhook.url", "at most %d bytes", URL)
	case len(w.GetSigningSecret()) > Name || len(w.GetRoutingKeySecret()) > Name || len(w.GetSeverity()) > Name:
		return exceeded("webhook", "secret names and the severity are at most %d bytes", Name)
	}
	return nil
}

// Alert checks an alert of the outbox.
func Alert(a *configv1.Alert) error {
	if err := Meta(a.GetMeta()); err != nil {
		return err
	}
	e := a.GetEvent()
	switch {
	case len(a.GetRule()) > Name || len(a.GetRecordId()) > 2*Name:
		return exceeded("alert", "rule and record id are at most %d bytes", Name)
	case len(a.GetReason()) > AlertText || len(a.GetLastError()) > AlertText:
		return exceeded("alert", "reason and error are at most %d bytes", AlertText)
	case len(e.GetKind()) > Name || len(e.GetDataplane()) > Name || len(e.GetAgent()) > Name ||
		len(e.GetUser()) > 2*Name || len(e.GetTarget()) > 2*Name || len(e.GetDecision()) > Name || len(e.GetOutcomeReason()) > Name:
		return exceeded("alert.event", "names are at most %d bytes", 2*Name)
	case len(e.GetPolicies()) > AlertPolicies || len(e.GetTags()) > AlertPolicies:
		return exceeded("alert.event", "at most %d policies and tags", AlertPolicies)
	}
	for _, p := range append(e.GetPolicies(), e.GetTags()...) {
		if len(p) > 2*Name {
			return exceeded("alert.event.policies", "at most %d bytes each", 2*Name)
		}
	}
	return nil
}

// AuditCursor checks an audit consumer's cursor.
func AuditCursor(c *configv1.AuditCursor) error {
	if err := Meta(c.GetMeta()); err != nil {
		return err
	}
	return AuditMarks("marks", c.GetMarks())
}

// AuditMarks checks the marks of a cursor or of a batch.
func AuditMarks(field string, marks []*configv1.AuditMark) error {
	if len(marks) > AuditChains {
		return exceeded(field, "at most %d chains", AuditChains)
	}
	for i, m := range marks {
		if len(m.GetDataplane()) > Name {
			return exceeded(fmt.Sprintf("%s[%d].dataplane", field, i), "at most %d bytes", Name)
		}
	}
	return nil
}
