package config

import (
	"context"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/batch"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

var _ pipeline.ToolLister = (*Compiled)(nil)

// Listable returns the servable tools, in action-name order, that the
// policies could permit some call by call.Agent to make — on behalf of
// call.User when set — whatever the call's arguments and time.
//
// Each tool is evaluated with the request Authorize would build, except
// that context.arguments and context.time are unknown (batch.Ignore), and
// so are context.sourceIp and context.protocol when the call does not carry
// them. Cedar's batch evaluation then drops every permit condition that
// depends on an unknown (it could hold) and every forbid whose conditions
// depend on one (it might not apply): a tool is listed unless no permit can
// apply or a forbid applies whatever the unknowns are. The listing is
// advisory; every tools/call is still authorized with Authorize.
//
// A call without an enabled agent lists nothing. A tool whose evaluation
// fails is not listed. Each tool is evaluated with only the policies whose
// scope can match the call (see policyIndex), which lists exactly what
// evaluating every policy would.
func (c *Compiled) Listable(ctx context.Context, call *pipeline.Call) []pipeline.Tool {
	return c.listable(ctx, call, func(action, principal types.EntityUID) cedar.PolicyIterator {
		set := c.index.applicable(action, principal.ID)
		return &set
	})
}

// listable implements Listable, evaluating each tool with the policies
// policiesFor returns for its action and the call's agent.
func (c *Compiled) listable(ctx context.Context, call *pipeline.Call, policiesFor func(action, principal types.EntityUID) cedar.PolicyIterator) []pipeline.Tool {
	if call == nil || call.Agent == nil {
		return nil
	}
	principal := agentUID(call.Agent.GetMeta().GetName())
	if _, ok := c.entities[principal]; !ok {
		return nil
	}
	var entities types.EntityGetter = c.entities
	attrs := types.RecordMap{
		cedarschema.ContextArguments: batch.Ignore(),
		cedarschema.ContextProtocol:  batch.Ignore(),
		cedarschema.ContextTime:      batch.Ignore(),
		cedarschema.ContextSourceIP:  batch.Ignore(),
		cedarschema.ContextDegraded:  types.Boolean(call.Mode == configsyncv1.Mode_MODE_DEGRADED),
	}
	if call.Protocol != "" {
		attrs[cedarschema.ContextProtocol] = types.String(call.Protocol)
	}
	if call.SourceIP.IsValid() {
		attrs[cedarschema.ContextSourceIP] = types.IPAddr(netipPrefix(call.SourceIP.Unmap()))
	}
	if call.User != nil {
		attrs[cedarschema.ContextUser] = userUID(call.User)
		entities = overlay{base: c.entities, extra: userEntity(call.User)}
	}
	reqContext := types.NewRecord(attrs)

	var out []pipeline.Tool
	for _, t := range c.toolList {
		if ctx.Err() != nil {
			return nil
		}
		allowed := false
		action := cedarschema.ActionUID(t.Action)
		err := batch.Authorize(ctx, policiesFor(action, principal), entities, batch.Request{
			Principal: principal,
			Action:    action,
			Resource:  toolUID(t.Action),
			Context:   reqContext,
		}, func(r batch.Result) error {
			allowed = r.Decision == types.Allow
			return nil
		})
		if err == nil && allowed {
			out = append(out, t)
		}
	}
	return out
}
