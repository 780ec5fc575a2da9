package state

import (
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// Alert rules, the outbox and the audit consumers' cursors.
//
// A rule's secrets must exist and be bound (explicitly) to its webhook's
// host: the routing key is sent there, and the signing key signs what is
// sent there. A secret a rule uses cannot be deleted, nor bound elsewhere.
// Outbox alerts and cursors are written only by the leader's commands
// (ConsumeAudit, SettleAlert), never by a put; an operator may drop an
// alert (delete), never a cursor.

func prepareAlertRule(t *txn, _, r *fsmv1.Resource) *fsmv1.Error {
	w := r.GetAlertRule().GetWebhook()
	for _, name := range ruleSecrets(w) {
		s, ok := t.get(resource.Secret, name)
		if !ok {
			return failed("secret %q does not exist; create it first (gwctl secret set %s --hosts %s)", name, name, secretbind.HostOf(w.GetUrl()))
		}
		hosts := s.GetSecret().GetHosts()
		if len(hosts) == 0 || !secretbind.AllowsURL(hosts, w.GetUrl()) {
			return failed("secret %q is not bound to the webhook's host %s; use a secret bound to it (gwctl secret set NAME --hosts %s), or have an admin bind this one (gwctl secret bind %s --hosts …)",
				name, secretbind.HostOf(w.GetUrl()), secretbind.HostOf(w.GetUrl()), name)
		}
	}
	return nil
}

// ruleSecrets lists the secrets a rule's webhook uses.
func ruleSecrets(w *configv1.AlertWebhook) []string {
	out := []string{w.GetSigningSecret()}
	if w.GetRoutingKeySecret() != "" {
		out = append(out, w.GetRoutingKeySecret())
	}
	return out
}

// alertRuleUsing returns a rule that uses the named secret, or nil.
func alertRuleUsing(t *txn, secret string) *configv1.AlertRule {
	var found *configv1.AlertRule
	t.each(resource.AlertRule, func(r *fsmv1.Resource) bool {
		for _, s := range ruleSecrets(r.GetAlertRule().GetWebhook()) {
			if s == secret {
				found = r.GetAlertRule()
				return false
			}
		}
		return true
	})
	return found
}

// checkRuleSecretBinding refuses to bind a secret so that a rule using it
// could no longer send to its webhook.
func checkRuleSecretBinding(t *txn, s *configv1.Secret) *fsmv1.Error {
	var conflict *fsmv1.Error
	t.each(resource.AlertRule, func(r *fsmv1.Resource) bool {
		w := r.GetAlertRule().GetWebhook()
		for _, name := range ruleSecrets(w) {
			if name == s.GetMeta().GetName() && !secretbind.AllowsURL(s.GetHosts(), w.GetUrl()) {
				conflict = failed("alert rule %q sends with secret %q to %s, which %s leaves out; add that host, or change the rule first",
					resource.Name(r), name, secretbind.HostOf(w.GetUrl()), secretbind.Describe(s.GetHosts()))
				return false
			}
		}
		return true
	})
	return conflict
}

func refusePut(what string) func(*txn, *fsmv1.Resource, *fsmv1.Resource) *fsmv1.Error {
	return func(*txn, *fsmv1.Resource, *fsmv1.Resource) *fsmv1.Error {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%s", what)
	}
}

func beforeDeleteAuditCursor(*txn, *fsmv1.Resource) *fsmv1.Error {
	return errf(fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, "an audit consumer's cursor cannot be deleted: its consumer would read every stored record again")
}
