package config

import (
	"context"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// AuthorizeUnindexed decides call by evaluating every policy of the
// version, without the index or the cache: the reference Authorize must
// agree with.
func (c *Compiled) AuthorizeUnindexed(call *pipeline.Call) pipeline.Decision {
	req, err := c.request(call)
	if err != nil {
		return pipeline.Decision{Errors: []string{err.Error()}}
	}
	return c.evaluate(call, req, c.policies)
}

// CachedDecisions reports how many decisions c remembers.
func (c *Compiled) CachedDecisions() int {
	if c.cache == nil {
		return 0
	}
	return c.cache.len()
}

// AuthorizeAssembled decides call by copying the applicable policies into a
// fresh cedar.PolicySet per request: the alternative to iterating the
// index's buckets in place, kept for the benchmark comparing them.
func (c *Compiled) AuthorizeAssembled(call *pipeline.Call) pipeline.Decision {
	req, err := c.request(call)
	if err != nil {
		return pipeline.Decision{Errors: []string{err.Error()}}
	}
	set := c.index.applicable(req.Action, req.Principal.ID)
	ps := cedar.NewPolicySet()
	for id, p := range set.All() {
		ps.Add(id, p)
	}
	return c.evaluate(call, req, ps)
}

// ListableUnindexed is Listable evaluating every policy for every tool.
func (c *Compiled) ListableUnindexed(ctx context.Context, call *pipeline.Call) []pipeline.Tool {
	return c.listable(ctx, call, func(types.EntityUID, types.EntityUID) cedar.PolicyIterator { return c.policies })
}
