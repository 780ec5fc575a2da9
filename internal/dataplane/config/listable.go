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

// ListableTools returns the servable tools, in action-name order, that the
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
func (c *Compiled) ListableTools(ctx context.Context, call *pipeline.Call) []pipeline.Tool {
	return c.listable(ctx, call, func(action, principal types.EntityUID) cedar.PolicyIterator {
		set := c.index.applicable(action, principal.ID)
		return &set
	})
}

// Permissible reports whether the policies could permit some call of
// action by call.Agent (on behalf of call.User when set), whatever the
// call's arguments and time: the evaluation Listable makes for each tool.
// `gwctl access who-can` asks it of every agent. An unknown action, or a
// call without an enabled agent, is never permissible.
func (c *Compiled) Permissible(ctx context.Context, call *pipeline.Call, action string) bool {
	t, ok := c.tools[action]
	if !ok {
		return false
	}
	p, ok := c.partial(call)
	if !ok {
		return false
	}
	set := c.index.applicable(cedarschema.ActionUID(action), p.principal.ID)
	return p.permits(ctx, t.Action, &set)
}

// listable implements Listable, evaluating each tool with the policies
// policiesFor returns for its action and the call's agent.
func (c *Compiled) listable(ctx context.Context, call *pipeline.Call, policiesFor func(action, principal types.EntityUID) cedar.PolicyIterator) []pipeline.Tool {
	p, ok := c.partial(call)
	if !ok {
		return nil
	}
	var out []pipeline.Tool
	for _, t := range c.toolList {
		if ctx.Err() != nil {
			return nil
		}
		if p.permits(ctx, t.Action, policiesFor(cedarschema.ActionUID(t.Action), p.principal)) {
			out = append(out, t)
		}
	}
	return out
}

// partialRequest is the part of a batch request that does not depend on
// the tool.
type partialRequest struct {
	principal types.EntityUID
	entities  types.EntityGetter
	context   types.Record
}

// partial builds the tool-independent part of the batch requests for call;
// false when the call has no enabled agent.
func (c *Compiled) partial(call *pipeline.Call) (partialRequest, bool) {
	if call == nil || call.Agent == nil {
		return partialRequest{}, false
	}
	principal := agentUID(call.Agent.GetMeta().GetName())
	if _, ok := c.entities[principal]; !ok {
		return partialRequest{}, false
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
	return partialRequest{principal: principal, entities: entities, context: types.NewRecord(attrs)}, true
}

// permits reports whether policies could permit the partial request for
// action; an evaluation error counts as no.
func (p partialRequest) permits(ctx context.Context, action string, policies cedar.PolicyIterator) bool {
	allowed := false
	err := batch.Authorize(ctx, policies, p.entities, batch.Request{
		Principal: p.principal,
		Action:    cedarschema.ActionUID(action),
		Resource:  toolUID(action),
		Context:   p.context,
	}, func(r batch.Result) error {
		allowed = r.Decision == types.Allow
		return nil
	})
	return err == nil && allowed
}
