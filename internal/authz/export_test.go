package authz

import (
	"context"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// DecideUnindexed decides req by evaluating every policy of the version,
// without the index or the cache: the reference Decide must agree with.
func (e *Engine) DecideUnindexed(req *Request) Decision {
	creq, err := e.request(req)
	if err != nil {
		return Decision{Errors: []string{err.Error()}}
	}
	return e.evaluate(req, creq, e.policies)
}

// CachedDecisions reports how many decisions e remembers.
func (e *Engine) CachedDecisions() int {
	if e.cache == nil {
		return 0
	}
	return e.cache.len()
}

// DecideAssembled decides req by copying the applicable policies into a
// fresh cedar.PolicySet per request: the alternative to iterating the
// index's buckets in place, kept for the benchmark comparing them.
func (e *Engine) DecideAssembled(req *Request) Decision {
	creq, err := e.request(req)
	if err != nil {
		return Decision{Errors: []string{err.Error()}}
	}
	set := e.index.applicable(creq.Action, creq.Principal.ID)
	ps := cedar.NewPolicySet()
	for id, p := range set.All() {
		ps.Add(id, p)
	}
	return e.evaluate(req, creq, ps)
}

// ListableUnindexed is Listable evaluating every policy for every tool.
func (e *Engine) ListableUnindexed(ctx context.Context, req *Request, typ ResourceType) []string {
	return e.listable(ctx, req, typ, func(types.EntityUID, types.EntityUID) cedar.PolicyIterator { return e.policies })
}
