package state

import (
	"slices"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// kindSpec holds the stateful rules of one kind: what a put must check or
// derive against the rest of the state, what a delete must not break, and
// what must still hold after either. Stateless rules live in package
// resource.
type kindSpec struct {
	// prepare checks references and fills derived fields of r; old is nil
	// on create.
	prepare func(t *txn, old, r *fsmv1.Resource) *fsmv1.Error
	// beforeDelete refuses a delete that would leave a dangling reference.
	beforeDelete func(t *txn, old *fsmv1.Resource) *fsmv1.Error
	// afterChange runs after a put or delete is staged; an error undoes it.
	// old is nil on create, r nil on delete.
	afterChange func(t *txn, old, r *fsmv1.Resource) *fsmv1.Error
}

// kinds is set in init: its rules write resources through txn.put, which
// reads it (a rollout's completion writes its policy set).
var kinds map[resource.Kind]kindSpec

func init() {
	kinds = map[resource.Kind]kindSpec{
		resource.Agent:          {prepare: prepareAgent},
		resource.Upstream:       {prepare: prepareUpstream, beforeDelete: beforeDeleteUpstream},
		resource.ToolPin:        {prepare: prepareToolPin, afterChange: revalidatePolicies},
		resource.PolicySet:      {prepare: preparePolicySet, beforeDelete: beforeDeletePolicySet, afterChange: afterPolicySet},
		resource.IdentitySource: {prepare: prepareIdentitySource, beforeDelete: beforeDeleteIdentitySource},
		resource.Secret:         {prepare: prepareSecret, beforeDelete: beforeDeleteSecret},
		resource.AdminToken:     {prepare: prepareAdminToken, beforeDelete: beforeDeleteAdminToken},
		resource.Node:           {},
		resource.ValueList:      {prepare: prepareValueList, beforeDelete: beforeDeleteValueList},
		resource.PolicyHistory:  {prepare: preparePolicyHistory, beforeDelete: beforeDeletePolicyHistory},
		resource.PolicyTests:    {prepare: preparePolicyTests},
		resource.Rollout:        {prepare: prepareRollout, beforeDelete: beforeDeleteRollout},
		// A setting refers to nothing and nothing refers to it; its
		// rules are stateless (package resource, package setting).
		resource.Setting:      {},
		resource.ListLearning: {prepare: prepareListLearning, afterChange: learningsChanged},
		resource.AlertRule:    {prepare: prepareAlertRule},
		resource.Alert:        {prepare: refusePut("alerts are queued by the leader's audit consumer, not written")},
		resource.AuditCursor: {
			prepare:      refusePut("audit cursors are moved by the leader's audit consumers, not written"),
			beforeDelete: beforeDeleteAuditCursor,
		},
		resource.ModelPrice: {prepare: prepareModelPrice},
		resource.Budget:     {},
		// A rate limit refers to nothing (its match lists may name agents
		// and tools that do not exist yet) and nothing refers to it.
		resource.RateLimit:      {},
		resource.InspectionRule: {prepare: prepareInspectionRule},
	}
}

func failed(format string, args ...any) *fsmv1.Error {
	return errf(fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, format, args...)
}

func prepareAgent(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	a := r.GetAgent()
	for _, s := range a.GetJwtSubjects() {
		src, ok := t.get(resource.IdentitySource, s.GetIdentitySource())
		if !ok || src.GetIdentitySource().GetJwtIssuer() == nil {
			return failed("identity source %q does not exist or is not a JWT issuer", s.GetIdentitySource())
		}
	}
	if old != nil && sameIdentifiers(old.GetAgent(), a) {
		// Nothing that identifies the agent changed (a disable, a team,
		// labels), so no conflict can appear.
		return nil
	}
	// Key ids, SPIFFE ids and certificate fingerprints each identify one
	// agent: a data plane looks the caller up by them. The index finds a
	// conflict without a scan of every agent.
	return t.identifierConflict(a)
}

func prepareUpstream(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	u := r.GetUpstream()
	if u.ToolPrefix == nil {
		p := resource.EffectivePrefix(u)
		u.ToolPrefix = &p
	}
	if old != nil && resource.EffectivePrefix(old.GetUpstream()) != u.GetToolPrefix() {
		return failed("the tool prefix of upstream %q is %q and cannot change (agents' tool names depend on it); register a new upstream instead",
			u.GetMeta().GetName(), resource.EffectivePrefix(old.GetUpstream()))
	}
	if old != nil && old.GetUpstream().GetProtocol() != u.GetProtocol() && a2aRules(t) && hasPins(t, u.GetMeta().GetName()) {
		// A pin approves a tool of an MCP server or an A2A agent's card:
		// what it approved means nothing under another protocol.
		return failed("upstream %q has pins and cannot change protocol; delete its pins first, or register a new upstream", u.GetMeta().GetName())
	}
	var conflict *fsmv1.Error
	t.each(resource.Upstream, func(o *fsmv1.Resource) bool {
		other := o.GetUpstream()
		if other.GetMeta().GetName() != u.GetMeta().GetName() && resource.EffectivePrefix(other) == u.GetToolPrefix() {
			conflict = errf(fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "tool prefix %q is already used by upstream %q; choose another with --prefix", u.GetToolPrefix(), other.GetMeta().GetName())
			return false
		}
		return true
	})
	if conflict != nil {
		return conflict
	}
	for _, name := range resource.SecretRefs(u) {
		if _, ok := t.get(resource.Secret, name); !ok {
			return failed("secret %q does not exist; create it first (gwctl secret set %s --hosts …)", name, name)
		}
	}
	if llmRules(t) {
		if err := checkModels(t, old, u); err != nil {
			return err
		}
	}
	return checkSecretUse(t, u)
}

func beforeDeleteUpstream(t *txn, old *fsmv1.Resource) *fsmv1.Error {
	name := resource.Name(old)
	var pinned []string
	t.each(resource.ToolPin, func(p *fsmv1.Resource) bool {
		if p.GetToolPin().GetUpstream() == name {
			pinned = append(pinned, p.GetToolPin().GetTool())
		}
		return len(pinned) < 5
	})
	if len(pinned) > 0 {
		return failed("upstream %q still has pinned tools (%v…); delete its tool pins first", name, pinned)
	}
	var rule string
	t.each(resource.InspectionRule, func(r *fsmv1.Resource) bool {
		if r.GetInspectionRule().GetScope().GetUpstream() == name {
			rule = resource.Name(r)
			return false
		}
		return true
	})
	if rule != "" {
		return failed("upstream %q is the scope of inspection rule %q; change or delete that rule first", name, rule)
	}
	if llmRules(t) {
		if priced := pricedModels(t, name); len(priced) > 0 {
			return failed("upstream %q still has model prices (%v); delete them first (gwctl price delete)", name, priced)
		}
	}
	return nil
}

// prepareInspectionRule refuses a rule scoped to an upstream that does not
// exist: a misspelt scope would leave the rule silently matching nothing.
func prepareInspectionRule(t *txn, _, r *fsmv1.Resource) *fsmv1.Error {
	if up := r.GetInspectionRule().GetScope().GetUpstream(); up != "" {
		if _, ok := t.get(resource.Upstream, up); !ok {
			return failed("upstream %q does not exist; a rule's scope names a registered upstream", up)
		}
	}
	return nil
}

// a2aRules reports whether the rules about A2A pins apply: once every
// voter supports them, so that every replica applies a command alike (a
// replica from before them would accept what they refuse).
func a2aRules(t *txn) bool {
	return clusterversion.Supports(t.base.Voters(), clusterversion.A2ABrokering)
}

// hasPins reports whether upstream has a pin.
func hasPins(t *txn, upstream string) bool {
	found := false
	t.each(resource.ToolPin, func(p *fsmv1.Resource) bool {
		found = p.GetToolPin().GetUpstream() == upstream
		return !found
	})
	return found
}

func prepareToolPin(t *txn, _, r *fsmv1.Resource) *fsmv1.Error {
	p := r.GetToolPin()
	u, ok := t.get(resource.Upstream, p.GetUpstream())
	if !ok {
		return failed("upstream %q does not exist", p.GetUpstream())
	}
	// An A2A agent's only pin is its card; only an A2A agent has one.
	card := p.GetKind() == configv1.PinKind_PIN_KIND_AGENT_CARD
	if a2a := u.GetUpstream().GetProtocol() == configv1.Protocol_PROTOCOL_A2A; card != a2a && a2aRules(t) {
		if a2a {
			return failed("upstream %q speaks A2A: its only pin is its agent card (approve it with gwctl upstream approve-card %s)", p.GetUpstream(), p.GetUpstream())
		}
		return failed("upstream %q does not speak A2A, so it has no agent card to pin", p.GetUpstream())
	}
	return nil
}

// prepareIdentitySource refuses to turn a JWT issuer that agents name into
// something else.
func prepareIdentitySource(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	if old == nil || old.GetIdentitySource().GetJwtIssuer() == nil || r.GetIdentitySource().GetJwtIssuer() != nil {
		return nil
	}
	if user := identitySourceUser(t, resource.Name(old)); user != "" {
		return failed("identity source %q is a JWT issuer that agent %q names; it cannot change kind while in use", resource.Name(old), user)
	}
	return nil
}

func identitySourceUser(t *txn, name string) string {
	var user string
	t.each(resource.Agent, func(a *fsmv1.Resource) bool {
		for _, s := range a.GetAgent().GetJwtSubjects() {
			if s.GetIdentitySource() == name {
				user = resource.Name(a)
				return false
			}
		}
		return true
	})
	return user
}

func beforeDeleteIdentitySource(t *txn, old *fsmv1.Resource) *fsmv1.Error {
	name := resource.Name(old)
	if user := identitySourceUser(t, name); user != "" {
		return failed("identity source %q is used by agent %q", name, user)
	}
	return nil
}

// ReservedDataplane is the name no data plane may take: the audit store
// keeps the control plane's own chain of admin writes under it
// (auditstore.ControlPlane).
const ReservedDataplane = "control-plane"

func prepareAdminToken(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	if old != nil {
		return failed("admin token %q exists; tokens are never changed, revoke it and create another", resource.Name(r))
	}
	tok := r.GetAdminToken()
	if tok.GetRole() == configv1.Role_ROLE_UNSPECIFIED {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a role is required")
	}
	if (tok.GetRole() == configv1.Role_ROLE_DATAPLANE) != (tok.GetDataplane() != "") {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a dataplane token names its data plane, and only a dataplane token does")
	}
	if tok.GetDataplane() == "" {
		return nil
	}
	if tok.GetDataplane() == ReservedDataplane {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%q names the control plane's own audit chain; choose another data plane name", ReservedDataplane)
	}
	if other := DataplaneToken(t.each, tok.GetDataplane()); other != nil {
		return errf(fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "data plane %q already has a join credential (token %s); revoke it first", tok.GetDataplane(), other.GetMeta().GetName())
	}
	return nil
}

// DataplaneToken finds the token of the named data plane, or nil.
func DataplaneToken(each func(resource.Kind, func(*fsmv1.Resource) bool), name string) *configv1.AdminToken {
	var found *configv1.AdminToken
	each(resource.AdminToken, func(r *fsmv1.Resource) bool {
		if r.GetAdminToken().GetDataplane() == name {
			found = r.GetAdminToken()
			return false
		}
		return true
	})
	return found
}

// beforeDeleteAdminToken refuses to revoke the last working admin token:
// nobody could manage the cluster afterwards.
func beforeDeleteAdminToken(t *txn, old *fsmv1.Resource) *fsmv1.Error {
	if old.GetAdminToken().GetRole() != configv1.Role_ROLE_ADMIN {
		return nil
	}
	now := t.cmd.GetTime().AsTime()
	others := 0
	t.each(resource.AdminToken, func(r *fsmv1.Resource) bool {
		tok := r.GetAdminToken()
		if resource.Name(r) != resource.Name(old) && tok.GetRole() == configv1.Role_ROLE_ADMIN &&
			(tok.GetExpireTime() == nil || tok.GetExpireTime().AsTime().After(now)) {
			others++
		}
		return others == 0
	})
	if others == 0 {
		return failed("refusing to revoke the last valid admin token; create another admin token first")
	}
	return nil
}

// sameIdentifiers reports whether two versions of an agent carry the same
// API key ids, SPIFFE ids and certificate fingerprints.
func sameIdentifiers(a, b *configv1.Agent) bool {
	ids := func(x *configv1.Agent) []string {
		var out []string
		for _, k := range x.GetApiKeys() {
			out = append(out, "k:"+k.GetId())
		}
		for _, id := range x.GetSpiffeIds() {
			out = append(out, "s:"+id)
		}
		for _, fp := range x.GetCertFingerprints() {
			out = append(out, "c:"+fp)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}
