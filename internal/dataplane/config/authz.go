package config

import (
	"context"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// This file adapts the version's policy engine (package authz) to the
// pipeline: a Call becomes an authz.Request, an authz.Decision a
// pipeline.Decision. Nothing else in this package knows Cedar.

var (
	_ pipeline.ToolLister        = (*Compiled)(nil)
	_ pipeline.ContentAuthorizer = (*Compiled)(nil)
)

// DefaultDecisionCacheSize is how many decisions a Compiled remembers
// unless [WithDecisionCache] says otherwise.
const DefaultDecisionCacheSize = authz.DefaultDecisionCacheSize

// WithDecisionCache bounds the policy engine's decision cache to size
// entries; 0 turns it off. The default is [DefaultDecisionCacheSize].
func WithDecisionCache(size int) Option {
	return func(o *options) { o.cacheSize = max(size, 0) }
}

// Engine is the version's policy engine.
func (c *Compiled) Engine() *authz.Engine { return c.engine }

// Authorize decides a call with the version's policy engine (see
// authz.Engine.Decide): every policy set combined, default deny, a
// satisfied forbid wins; a call whose arguments do not fit the tool's
// schema is denied before any policy runs. The arguments it decodes are
// recorded on the call for the Validate stage.
func (c *Compiled) Authorize(ctx context.Context, call *pipeline.Call) pipeline.Decision {
	req := request(call)
	d := c.engine.Decide(ctx, &req)
	if args, ok := req.DecodedArguments(); ok {
		call.SetDecodedArguments(args)
	}
	return pipeline.Decision{Allowed: d.Allowed, Policies: d.Policies, Errors: d.Errors, InvalidArguments: d.InvalidArguments}
}

// Listable returns the servable tools, in action-name order, that the
// policies could permit some call by call.Agent to make — on behalf of
// call.User when set — whatever the call's arguments and time (see
// authz.Engine.Listable). A call without an enabled agent lists nothing.
func (c *Compiled) Listable(ctx context.Context, call *pipeline.Call) []pipeline.Tool {
	if call == nil {
		return nil
	}
	req := request(call)
	var out []pipeline.Tool
	for _, action := range c.engine.Listable(ctx, &req, authz.ResourceTool) {
		out = append(out, c.tools[action])
	}
	return out
}

// ContentUpstreams implements pipeline.ContentAuthorizer: the MCP
// upstreams with at least one approved tool the policies could permit
// call.Agent to call (see Listable), in name order.
func (c *Compiled) ContentUpstreams(ctx context.Context, call *pipeline.Call) []pipeline.ContentUpstream {
	granted := map[string]bool{}
	for _, t := range c.Listable(ctx, call) {
		granted[t.Upstream] = true
	}
	all := c.MCPUpstreams()
	out := all[:0]
	for _, u := range all {
		if granted[u.Name] {
			out = append(out, u)
		}
	}
	return out
}

// request is the authz request of a tool call: the agent (on behalf of
// the user) calling the tool named call.Action with call.Arguments.
func request(call *pipeline.Call) authz.Request {
	req := authz.Request{
		Action:    call.Action,
		Resource:  authz.ToolResource(call.Action),
		Arguments: call.Arguments,
		Context: authz.Context{
			Protocol: call.Protocol,
			Time:     call.Start,
			SourceIP: call.SourceIP,
			Degraded: call.Mode == configsyncv1.Mode_MODE_DEGRADED,
		},
	}
	if call.Agent != nil {
		req.Agent = call.Agent.GetMeta().GetName()
	}
	if u := call.User; u != nil {
		req.User = &authz.User{Source: u.Source, Name: u.Name, Email: u.Email, Groups: u.Groups}
	}
	return req
}
