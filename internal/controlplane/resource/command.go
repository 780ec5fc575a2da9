package resource

import (
	"fmt"
	"net/netip"
	"unicode/utf8"

	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// ValidateCommand checks everything about a command that needs no state:
// the bounds of its own fields and of what its operation carries (a Put's
// resource through Validate). The state machine calls it before anything
// else, so a committed command over a limit is refused on every replica
// the same way; the admin API calls it before proposing, so such a
// command is normally never committed. A Put without a resource, or with
// one without kind or metadata, passes: the state machine refuses it with
// a message of its own. AppendAudit is the audit store's to check.
func ValidateCommand(cmd *fsmv1.Command) error {
	switch {
	case len(cmd.GetRequestId()) > limits.RequestID:
		return invalid("request_id", "at most %d bytes", limits.RequestID)
	case len(cmd.GetMethod()) > limits.Method:
		return invalid("method", "at most %d bytes", limits.Method)
	case len(cmd.GetActor().GetTokenId()) > limits.Actor:
		return invalid("actor.token_id", "at most %d bytes", limits.Actor)
	}
	switch op := cmd.GetOp().(type) {
	case *fsmv1.Command_Put:
		r := op.Put.GetResource()
		if KindOf(r) == "" || Meta(r) == nil {
			return nil
		}
		if err := Validate(r); err != nil {
			return fmt.Errorf("%s: %w", KindOf(r), err)
		}
	case *fsmv1.Command_Delete:
		if len(op.Delete.GetKind()) > limits.Name || len(op.Delete.GetName()) > limits.Name {
			return invalid("delete", "kind and name are at most %d bytes", limits.Name)
		}
	case *fsmv1.Command_SetFreeze:
		if len(op.SetFreeze.GetReason()) > limits.FreezeReason {
			return invalid("reason", "the freeze reason is limited to %d bytes", limits.FreezeReason)
		}
	case *fsmv1.Command_SignIn:
		ip := op.SignIn.GetSourceIp()
		if len(ip) > limits.Addr {
			return invalid("source_ip", "at most %d bytes", limits.Addr)
		}
		if _, err := netip.ParseAddr(ip); ip != "" && err != nil {
			return invalid("source_ip", "not an IP address")
		}
	case *fsmv1.Command_RolloutChange:
		rc := op.RolloutChange
		switch {
		case len(rc.GetRollout()) > limits.Name:
			return invalid("rollout_change.rollout", "at most %d bytes", limits.Name)
		case len(rc.GetReason()) > limits.PolicyMessage:
			return invalid("rollout_change.reason", "at most %d bytes", limits.PolicyMessage)
		case !utf8.ValidString(rc.GetReason()):
			return invalid("rollout_change.reason", "must be UTF-8")
		}
	case *fsmv1.Command_Bootstrap:
		if err := fromLimit(limits.ClusterIdentity(op.Bootstrap.GetIdentity()), ""); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	case *fsmv1.Command_ConsumeAudit:
		if err := validateConsumeAudit(op.ConsumeAudit); err != nil {
			return fmt.Errorf("consume_audit: %w", err)
		}
	case *fsmv1.Command_SettleAlert:
		if err := validateSettleAlert(op.SettleAlert); err != nil {
			return fmt.Errorf("settle_alert: %w", err)
		}
	case *fsmv1.Command_ChangeLearned:
		if len(op.ChangeLearned.GetChanges()) == 0 {
			return invalid("change_learned", "no change given")
		}
		if err := validateChanges("change_learned.changes", op.ChangeLearned.GetChanges()); err != nil {
			return err
		}
	}
	return nil
}
