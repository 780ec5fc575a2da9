package state

import (
	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// The state keeps the parse of every policy set's source (and of the
// active rollout's candidate) it has validated, so that a pin write
// re-validates the policies that name the changed tool without parsing
// 5,000 policies again. The cache is keyed by set name and holds the
// source and filename it parsed: an entry whose source differs from the
// resource's is parsed again, so the cache can never decide anything the
// source would not. It is derived state, like the agent identifier index:
// never in a snapshot, and filled again on first use after Read. Parsing
// is deterministic, so the cache changes nothing any replica decides.

// parsedKey is the cache key of the source of the resource of kind k
// named name (a policy set or a rollout).
func parsedKey(k resource.Kind, name string) []byte { return resKey(k, name) }

// parsedSet returns the parse of source, the source of the resource of
// kind k named name, from the cache or by parsing it (and caching it when
// the transaction commits). setName names the policy set the policies'
// ids are scoped to.
func (t *txn) parsedSet(k resource.Kind, name, setName, filename, source string) (*cedarschema.ParsedSet, error) {
	key := parsedKey(k, name)
	var cached *cedarschema.ParsedSet
	if t.parsed != nil {
		cached, _ = t.parsed.Get(key)
	} else {
		cached, _ = t.base.parsed.Get(key)
	}
	if cached != nil && cached.Matches(filename, source) {
		return cached, nil
	}
	set, err := cedarschema.ParseSet(setName, filename, []byte(source))
	if err != nil {
		return nil, err
	}
	t.parsedTxn().Insert(key, set)
	return set, nil
}

// parsedTxn is the write transaction over the parse cache, started on
// first use.
func (t *txn) parsedTxn() *iradix.Txn[*cedarschema.ParsedSet] {
	if t.parsed == nil {
		t.parsed = t.base.parsed.Txn()
	}
	return t.parsed
}

// forgetParsed drops the cached parse of a deleted resource's source.
func (t *txn) forgetParsed(k resource.Kind, name string) {
	if k != resource.PolicySet && k != resource.Rollout {
		return
	}
	t.parsedTxn().Delete(parsedKey(k, name))
}

// pinAction is the Cedar action of the tool pin r, "" for none (an
// agent card, or no pin).
func (t *txn) pinAction(r *fsmv1.Resource) string {
	p := r.GetToolPin()
	if p == nil || p.GetKind() == configv1.PinKind_PIN_KIND_AGENT_CARD {
		return ""
	}
	u, ok := t.get(resource.Upstream, p.GetUpstream())
	if !ok {
		return "" // refused at write time (prepareToolPin)
	}
	return cedarschema.ActionName(resource.EffectivePrefix(u.GetUpstream()), p.GetTool())
}

// revalidateActions checks, against the schema of the state being
// written, the policies of every enabled set (and of the active rollout's
// candidate) whose validation a change of the tool actions named in
// changed can change (cedarschema.ValidateAffected): those that name one
// of those actions, and those over every action or a group. Every enabled
// set was valid against the schema before this write, and a policy the
// change does not affect validates as it did, so this refuses exactly
// what revalidateAll refuses, with the same message. A change of a tool's
// input schema therefore re-validates the policies naming that tool, not
// the 5,000 policies of the scale fixture (issue 14).
func (t *txn) revalidateActions(changed []string) *fsmv1.Error {
	if t.fullRevalidation {
		return t.revalidateAll()
	}
	schema, err := t.cedarSchema()
	if err != nil {
		return failed("this change would make the gateway's Cedar schema invalid: %v", err)
	}
	var sets []*cedarschema.ParsedSet
	var perr error
	t.each(resource.PolicySet, func(r *fsmv1.Resource) bool {
		ps := r.GetPolicySet()
		if ps.GetDisabled() {
			return true
		}
		set, err := t.parsedSet(resource.PolicySet, ps.GetMeta().GetName(), ps.GetMeta().GetName(), ps.GetFilename(), ps.GetSource())
		if err != nil {
			perr = err
			return false
		}
		sets = append(sets, set)
		return true
	})
	if perr != nil {
		return failed("this change would break an enabled policy set; change the policy first:\n%v", perr)
	}
	if len(sets) > 0 {
		if _, err := schema.ValidateAffected(sets, changed); err != nil {
			return failed("this change would break an enabled policy set; change the policy first:\n%v", err)
		}
	}
	if ro, ok := activeRollout(t.each); ok {
		set, err := t.parsedSet(resource.Rollout, ro.GetMeta().GetName(), ro.GetPolicySet(), ro.GetFilename(), ro.GetSource())
		if err == nil {
			_, err = schema.ValidateAffected([]*cedarschema.ParsedSet{set}, changed)
		}
		if err != nil {
			return failed("this change would break the candidate of rollout %s (policy set %q); abort or finish the rollout first:\n%v",
				ro.GetMeta().GetName(), ro.GetPolicySet(), err)
		}
	}
	return nil
}
