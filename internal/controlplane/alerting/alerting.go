// Package alerting is the audit consumer that turns events into alerts:
// it matches every record it reads against the enabled alert rules and
// queues, in the replicated outbox, one alert per rule and event (package
// alertsend delivers them). A rule matches
//
//   - policy_deny: a call denied where a policy that determined the
//     decision (the record's policies) carries @alert("<tag>"), with the
//     rule's tag or, for a rule without one, any tag;
//   - quarantine: a call refused because its tool is quarantined; one
//     alert per rule, tool and hour, however many calls are refused;
//   - rollout_rollback: a staged policy rollout rolled back by its gates
//     (automatically), which the state machine records in the control
//     plane's audit chain as an EVENT_KIND_ROLLOUT record (read through
//     rollout.AlertOf). An operator's own rollback pages no one.
//
// New kinds of events (enforce-mode inspection findings, budget
// exhaustion) are new AlertMatch kinds and a case in match.
//
// Annotations are read from the policy sets as they are when the record
// is consumed, a fraction of a second after the decision: a set changed in
// between is read in its new version.
package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/rollout"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// Name is the consumer's name (its cursor's).
const Name = "alert"

// Event kinds, as AlertEvent.kind names them.
const (
	KindPolicyDeny      = "policy_deny"
	KindQuarantine      = "quarantine"
	KindRolloutRollback = "rollout_rollback"
)

// Consumer queues alerts.
type Consumer struct {
	// annotations caches each policy set's annotations by its version.
	annotations map[string]setAnnotations
}

type setAnnotations struct {
	version int64
	byID    map[string]map[string]string
}

var _ auditconsumer.Consumer = (*Consumer)(nil)

// New returns the consumer.
func New() *Consumer { return &Consumer{annotations: map[string]setAnnotations{}} }

// Name implements auditconsumer.Consumer.
func (*Consumer) Name() string { return Name }

// Pending implements auditconsumer.Consumer: only records bring work.
func (*Consumer) Pending(*state.State) bool { return false }

// Consume implements auditconsumer.Consumer.
func (c *Consumer) Consume(_ context.Context, b *auditconsumer.Batch) error {
	var rules []*configv1.AlertRule
	b.State.Each(resource.AlertRule, func(r *fsmv1.Resource) bool {
		if !r.GetAlertRule().GetDisabled() {
			rules = append(rules, r.GetAlertRule())
		}
		return true
	})
	if len(rules) == 0 {
		return nil
	}
	tags := c.tagsOf(b.State)
	action := actions(b.State)
	seen := map[string]bool{}
	for _, r := range b.Records {
		ev, ok := Event(r, tags, action)
		if !ok {
			continue
		}
		for _, rule := range rules {
			if !Matches(rule, ev) {
				continue
			}
			a := NewAlert(rule, r, ev)
			if seen[a.GetMeta().GetName()] {
				continue
			}
			if len(b.Out.Alerts) >= limits.ConsumeBatch {
				if len(b.Records) > 1 {
					return auditconsumer.ErrBatchTooLarge
				}
				return nil // one record of more events than a command holds
			}
			seen[a.GetMeta().GetName()] = true
			b.Out.Alerts = append(b.Out.Alerts, a)
		}
	}
	return nil
}

// tagsOf returns the @alert tags of every policy of the enabled sets, by
// policy id; a set whose annotations cannot be read adds none.
func (c *Consumer) tagsOf(st *state.State) map[string]string {
	out := map[string]string{}
	keep := map[string]bool{}
	st.Each(resource.PolicySet, func(r *fsmv1.Resource) bool {
		ps := r.GetPolicySet()
		name := ps.GetMeta().GetName()
		keep[name] = true
		cached, ok := c.annotations[name]
		if !ok || cached.version != ps.GetVersion() {
			byID, err := cedarschema.Annotations(name, []byte(ps.GetSource()))
			if err != nil {
				byID = nil
			}
			cached = setAnnotations{version: ps.GetVersion(), byID: byID}
			c.annotations[name] = cached
		}
		for id, ann := range cached.byID {
			if tag, ok := ann[cedarschema.AlertAnnotation]; ok {
				out[id] = tag
			}
		}
		return true
	})
	for name := range c.annotations {
		if !keep[name] {
			delete(c.annotations, name)
		}
	}
	return out
}

// actions returns the function naming the tool of a record written
// before records kept both names by its action name ("<prefix>__<tool>"),
// or "<upstream>/<tool>" when its upstream is gone.
func actions(st *state.State) func(upstream, tool string) string {
	return func(upstream, tool string) string {
		if u, ok := st.Get(resource.Upstream, upstream); ok {
			return cedarschema.ActionName(resource.EffectivePrefix(u.GetUpstream()), tool)
		}
		return upstream + "/" + tool
	}
}

// Event describes what a record tells an alert rule, if anything: a denial
// by policies (with their @alert tags), a refusal of a quarantined tool, a
// rollout rollback. tags maps policy ids to their @alert tag; action names
// the tool of a record that carries its upstream's own name (written
// before records kept both names).
func Event(r *auditv1.Record, tags map[string]string, action func(upstream, tool string) string) (*configv1.AlertEvent, bool) {
	ev := &configv1.AlertEvent{
		Time: r.GetTime(), Dataplane: r.GetDataplane(), Agent: r.GetAgent(), User: r.GetUser(),
		Decision: r.GetDecision(), OutcomeReason: r.GetReason(),
	}
	switch {
	case r.GetTool() == "":
	case r.GetTargetOwn() == "" && r.GetUpstream() != "":
		// Written before records kept both names: tool is the
		// upstream's own name.
		ev.Target = action(r.GetUpstream(), r.GetTool())
	default:
		ev.Target = r.GetTool() // the name agents use
	}
	switch r.GetKind() {
	case auditv1.EventKind_EVENT_KIND_CALL, auditv1.EventKind_EVENT_KIND_UNSPECIFIED:
		switch {
		case r.GetDecision() == "deny":
			ev.Kind = KindPolicyDeny
			ev.Policies = firstN(r.GetPolicies(), limits.AlertPolicies)
			for _, p := range r.GetPolicies() {
				if t, ok := tags[p]; ok && !slices.Contains(ev.Tags, t) && len(ev.Tags) < limits.AlertPolicies {
					ev.Tags = append(ev.Tags, t)
				}
			}
			slices.Sort(ev.Tags)
			return ev, len(ev.Tags) > 0
		case r.GetReason() == "quarantined":
			ev.Kind = KindQuarantine
			return ev, true
		}
	case auditv1.EventKind_EVENT_KIND_ROLLOUT:
		// Only the state machine writes the control plane's chain; a data
		// plane's record of this kind is not believed.
		if a, ok := rollout.AlertOf(r); ok && r.GetDataplane() == auditstore.ControlPlane {
			ev.Kind = KindRolloutRollback
			ev.Agent, ev.User, ev.Decision = "", "", ""
			ev.Target = string(resource.PolicySet) + "/" + a.PolicySet
			ev.OutcomeReason = cut(fmt.Sprintf("rollout %s, in %s: %s", a.Rollout, a.FromStage, a.Reason), limits.AlertText)
			return ev, true
		}
	}
	return nil, false
}

// Matches reports whether rule fires on ev.
func Matches(rule *configv1.AlertRule, ev *configv1.AlertEvent) bool {
	for _, m := range rule.GetMatch() {
		switch k := m.GetKind().(type) {
		case *configv1.AlertMatch_PolicyDeny:
			if ev.GetKind() == KindPolicyDeny && (k.PolicyDeny.GetTag() == "" || slices.Contains(ev.GetTags(), k.PolicyDeny.GetTag())) {
				return true
			}
		case *configv1.AlertMatch_Quarantine:
			if ev.GetKind() == KindQuarantine {
				return true
			}
		case *configv1.AlertMatch_RolloutRollback:
			if ev.GetKind() == KindRolloutRollback {
				return true
			}
		}
	}
	return false
}

// NewAlert is the alert rule queues for the event ev of record r. Its
// name is derived from the rule and the event, so the same event queues
// one alert per rule whoever consumes it; quarantines of one tool fold
// into one alert per hour.
func NewAlert(rule *configv1.AlertRule, r *auditv1.Record, ev *configv1.AlertEvent) *configv1.Alert {
	id := fmt.Sprintf("%s/%d", r.GetDataplane(), r.GetSequence())
	key := rule.GetMeta().GetName() + "\n" + id
	if ev.GetKind() == KindQuarantine {
		key = rule.GetMeta().GetName() + "\nquarantine\n" + ev.GetTarget() + "\n" + r.GetTime().AsTime().UTC().Format("2006-01-02T15")
	}
	sum := sha256.Sum256([]byte(key))
	return &configv1.Alert{
		Meta:     &configv1.ResourceMeta{Name: "a" + hex.EncodeToString(sum[:12])},
		Rule:     rule.GetMeta().GetName(),
		RecordId: id,
		Reason:   cut(Reason(ev), limits.AlertText),
		Event:    ev,
	}
}

// Reason words an event for people.
func Reason(ev *configv1.AlertEvent) string {
	who := fmt.Sprintf("agent %q", ev.GetAgent())
	if ev.GetUser() != "" {
		who += fmt.Sprintf(" (for user %q)", ev.GetUser())
	}
	switch ev.GetKind() {
	case KindPolicyDeny:
		return fmt.Sprintf("%s was denied %s by policy %s (@alert %s) on data plane %q",
			who, ev.GetTarget(), strings.Join(ev.GetPolicies(), ", "), strings.Join(ev.GetTags(), ", "), ev.GetDataplane())
	case KindQuarantine:
		return fmt.Sprintf("%s was refused %s because the tool is quarantined (its upstream changed it after approval) on data plane %q",
			who, ev.GetTarget(), ev.GetDataplane())
	case KindRolloutRollback:
		return fmt.Sprintf("the staged rollout of %s was rolled back automatically: %s", ev.GetTarget(), ev.GetOutcomeReason())
	}
	return "an event matched the rule"
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		s = s[:n]
	}
	return slices.Clone(s)
}

// cut returns s cut to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
