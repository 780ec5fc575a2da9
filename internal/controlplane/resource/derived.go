package resource

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// Scopes of learned lists, as LearnedSet.scope writes them.
const (
	scopeAgent  = "agent:"
	scopeTeam   = "team:"
	ScopeGlobal = "global"
)

// AgentScope is the scope of one agent's learned set.
func AgentScope(agent string) string { return scopeAgent + agent }

// TeamScope is the scope of one team's learned set.
func TeamScope(team string) string { return scopeTeam + team }

// ScopeOf is the scope a call by agent (of team) learns into and reads
// from under a learning's scope: "" when it has none (a team-scoped list
// and an agent without a team).
func ScopeOf(s configv1.LearningScope, agent, team string) string {
	switch s {
	case configv1.LearningScope_LEARNING_SCOPE_AGENT:
		if agent != "" {
			return AgentScope(agent)
		}
	case configv1.LearningScope_LEARNING_SCOPE_TEAM:
		if team != "" {
			return TeamScope(team)
		}
	case configv1.LearningScope_LEARNING_SCOPE_GLOBAL:
		return ScopeGlobal
	}
	return ""
}

// ValidateScope checks a learned set's scope against the learning's: a
// scope of its kind with a valid name.
func ValidateScope(field, scope string, kind configv1.LearningScope) error {
	var name string
	switch {
	case scope == ScopeGlobal && kind == configv1.LearningScope_LEARNING_SCOPE_GLOBAL:
		return nil
	case strings.HasPrefix(scope, scopeAgent) && kind == configv1.LearningScope_LEARNING_SCOPE_AGENT:
		name = strings.TrimPrefix(scope, scopeAgent)
	case strings.HasPrefix(scope, scopeTeam) && kind == configv1.LearningScope_LEARNING_SCOPE_TEAM:
		name = strings.TrimPrefix(scope, scopeTeam)
	default:
		return invalid(field, "%q is not a scope of a list learning per %s (want %s)", scope, ScopeName(kind), scopeForm(kind))
	}
	return ValidateName(field, name)
}

// validScopeForm checks the form of a scope whatever its kind.
func validScopeForm(field, scope string) error {
	for _, k := range []configv1.LearningScope{configv1.LearningScope_LEARNING_SCOPE_AGENT, configv1.LearningScope_LEARNING_SCOPE_TEAM, configv1.LearningScope_LEARNING_SCOPE_GLOBAL} {
		if ValidateScope(field, scope, k) == nil {
			return nil
		}
	}
	return invalid(field, "%q is not a scope (agent:<name>, team:<name> or global)", scope)
}

func scopeForm(k configv1.LearningScope) string {
	switch k {
	case configv1.LearningScope_LEARNING_SCOPE_AGENT:
		return "agent:<name>"
	case configv1.LearningScope_LEARNING_SCOPE_TEAM:
		return "team:<name>"
	}
	return "global"
}

// ScopeName is the word for a learning scope: "agent", "team", "global".
func ScopeName(k configv1.LearningScope) string {
	switch k {
	case configv1.LearningScope_LEARNING_SCOPE_AGENT:
		return "agent"
	case configv1.LearningScope_LEARNING_SCOPE_TEAM:
		return "team"
	case configv1.LearningScope_LEARNING_SCOPE_GLOBAL:
		return "global"
	}
	return "unspecified"
}

var (
	actionRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,256}$`)
	argumentRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]{1,128}){0,7}$`)
)

// ArgumentPath splits a learning's argument into its member names.
func ArgumentPath(arg string) []string { return strings.Split(arg, ".") }

func validateListLearning(l *configv1.ListLearning) error {
	if err := ValidateName("meta.name", l.GetMeta().GetName()); err != nil {
		return err
	}
	if !actionRE.MatchString(l.GetTool()) {
		return invalid("tool", "%q is not a tool's action name (<prefix>__<tool>, e.g. bank__transfer)", l.GetTool())
	}
	if !argumentRE.MatchString(l.GetArgument()) {
		return invalid("argument", "%q is not an argument name: a name of A-Z, a-z, 0-9, '_' and '-', or a dotted path of such names (payee.account)", l.GetArgument())
	}
	switch l.GetScope() {
	case configv1.LearningScope_LEARNING_SCOPE_AGENT, configv1.LearningScope_LEARNING_SCOPE_TEAM, configv1.LearningScope_LEARNING_SCOPE_GLOBAL:
	default:
		return invalid("scope", "is required: agent, team or global")
	}
	for i, set := range l.GetSets() {
		f := fmt.Sprintf("sets[%d]", i)
		if err := ValidateScope(f+".scope", set.GetScope(), l.GetScope()); err != nil {
			return err
		}
		for j, v := range set.GetValues() {
			if err := ValidateListValue(fmt.Sprintf("%s.values[%d]", f, j), v); err != nil {
				return err
			}
		}
	}
	return nil
}

// AlertSeverities are the PagerDuty severities a rule may set.
var AlertSeverities = map[string]bool{"": true, "critical": true, "error": true, "warning": true, "info": true}

func validateAlertRule(r *configv1.AlertRule) error {
	if err := ValidateName("meta.name", r.GetMeta().GetName()); err != nil {
		return err
	}
	if len(r.GetMatch()) == 0 {
		return invalid("match", "give at least one event to alert on (a policy's @alert tag, quarantines, rollout rollbacks)")
	}
	for i, m := range r.GetMatch() {
		if m.GetKind() == nil {
			return invalid(fmt.Sprintf("match[%d]", i), "names no kind of event")
		}
		if t := m.GetPolicyDeny().GetTag(); t != "" && !labelKeyRE.MatchString(t) {
			return invalid(fmt.Sprintf("match[%d].policy_deny.tag", i), "%q: use 1-63 characters of A-Z, a-z, 0-9, '_', '.', '/' and '-'", t)
		}
	}
	w := r.GetWebhook()
	if err := ValidateWebhookURL("webhook.url", w.GetUrl()); err != nil {
		return err
	}
	switch w.GetFormat() {
	case configv1.AlertFormat_ALERT_FORMAT_GENERIC:
		if w.GetRoutingKeySecret() != "" {
			return invalid("webhook.routing_key_secret", "only the PagerDuty format sends a routing key")
		}
	case configv1.AlertFormat_ALERT_FORMAT_PAGERDUTY:
		if err := ValidateName("webhook.routing_key_secret", w.GetRoutingKeySecret()); err != nil {
			return invalid("webhook.routing_key_secret", "the PagerDuty format needs the name of the secret holding the routing key")
		}
	default:
		return invalid("webhook.format", "is required: generic or pagerduty")
	}
	if err := ValidateName("webhook.signing_secret", w.GetSigningSecret()); err != nil {
		return invalid("webhook.signing_secret", "is required: the name of the secret whose value keys the HMAC-SHA256 signature")
	}
	if !AlertSeverities[w.GetSeverity()] {
		return invalid("webhook.severity", "%q: use critical, error, warning or info", w.GetSeverity())
	}
	return nil
}

// ValidateWebhookURL checks an alert webhook's URL: https, or http to a
// loopback address only (an alert tells what was refused, to whom: it
// crosses no network in the clear).
func ValidateWebhookURL(field, raw string) error {
	if err := ValidateURL(field, raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	if u.Scheme == "https" {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	return invalid(field, "use https (http only to a loopback address such as %s)", net.JoinHostPort("127.0.0.1", "8080"))
}

func validateAlert(a *configv1.Alert) error {
	if err := ValidateName("meta.name", a.GetMeta().GetName()); err != nil {
		return err
	}
	if err := ValidateName("rule", a.GetRule()); err != nil {
		return err
	}
	if a.GetRecordId() == "" {
		return invalid("record_id", "is required")
	}
	return nil
}

// validateConsumeAudit checks a batch of an audit consumer.
func validateConsumeAudit(c *fsmv1.ConsumeAudit) error {
	if err := ValidateName("consumer", c.GetConsumer()); err != nil {
		return err
	}
	if err := fromLimit(limits.AuditMarks("marks", c.GetMarks()), ""); err != nil {
		return err
	}
	if err := validateChanges("learned", c.GetLearned()); err != nil {
		return err
	}
	if len(c.GetSeeded()) > limits.ConsumeBatch {
		return invalid("seeded", "at most %d", limits.ConsumeBatch)
	}
	for i, sd := range c.GetSeeded() {
		if err := ValidateName(fmt.Sprintf("seeded[%d].list", i), sd.GetList()); err != nil {
			return err
		}
	}
	if len(c.GetAlerts()) > limits.ConsumeBatch {
		return invalid("alerts", "at most %d", limits.ConsumeBatch)
	}
	for i, a := range c.GetAlerts() {
		if err := fromLimit(limits.Alert(a), ""); err != nil {
			return fmt.Errorf("alerts[%d]: %w", i, err)
		}
		if err := validateAlert(a); err != nil {
			return fmt.Errorf("alerts[%d]: %w", i, err)
		}
	}
	return nil
}

// validateChanges checks learned changes: lists, scopes, values and record
// ids, and how many there are.
func validateChanges(field string, changes []*fsmv1.LearnedChange) error {
	if len(changes) > limits.ConsumeBatch {
		return invalid(field, "at most %d changes", limits.ConsumeBatch)
	}
	total := 0
	for i, ch := range changes {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := ValidateName(f+".list", ch.GetList()); err != nil {
			return err
		}
		if err := validScopeForm(f+".scope", ch.GetScope()); err != nil {
			return err
		}
		total += len(ch.GetAdd()) + len(ch.GetRemove())
		if total > limits.LearnedValues {
			return invalid(field, "at most %d values in all", limits.LearnedValues)
		}
		for j, v := range ch.GetAdd() {
			if err := ValidateListValue(fmt.Sprintf("%s.add[%d]", f, j), v.GetValue()); err != nil {
				return err
			}
			if len(v.GetRecordId()) > 2*limits.Name {
				return invalid(fmt.Sprintf("%s.add[%d].record_id", f, j), "at most %d bytes", 2*limits.Name)
			}
		}
		for j, v := range ch.GetRemove() {
			if err := ValidateListValue(fmt.Sprintf("%s.remove[%d]", f, j), v); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateSettleAlert checks a delivery attempt's record.
func validateSettleAlert(s *fsmv1.SettleAlert) error {
	if err := ValidateName("name", s.GetName()); err != nil {
		return err
	}
	switch {
	case s.GetOutcome() == fsmv1.AlertOutcome_ALERT_OUTCOME_UNSPECIFIED:
		return invalid("outcome", "is required")
	case s.GetAttempt() < 1:
		return invalid("attempt", "counts from 1")
	case len(s.GetError()) > limits.AlertText:
		return invalid("error", "at most %d bytes", limits.AlertText)
	}
	return nil
}
