package authz

import (
	"context"
	"maps"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/batch"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// Partial evaluation answers "could some call be permitted?" without the
// call's arguments: tools/list filtering, content access and who-can.
//
// A request is evaluated as Decide would build it, except that
// context.arguments and context.time are unknown (batch.Ignore), and so
// are context.sourceIp and context.protocol when the request does not
// carry them. Cedar's batch evaluation then drops every permit condition
// that depends on an unknown (it could hold) and every forbid whose
// conditions depend on one (it might not apply): a resource is permissible
// unless no permit can apply or a forbid applies whatever the unknowns are.
// The answer is advisory; every call is still decided with Decide.
//
// Each resource is evaluated with only the policies whose scope can match
// (see policyIndex), which answers exactly what evaluating every policy
// would.

// Permissible reports whether the policies could permit some call of
// req.Action on req.Resource by req.Agent (on behalf of req.User when
// set), whatever its arguments and time. An unknown resource, an action
// that does not apply to it, or a request without an enabled agent is
// never permissible; neither is one whose evaluation fails.
func (e *Engine) Permissible(ctx context.Context, req *Request) bool {
	t, err := e.target(req.Action, req.Resource)
	if err != nil {
		return false
	}
	p, ok := e.partial(req)
	if !ok {
		return false
	}
	set := e.index.applicable(cedarschema.ActionUID(t.action), p.principal.ID)
	return p.permits(ctx, t, &set)
}

// Listable returns the ids, in order, of the resources of type typ on
// which the policies could permit req.Agent (on behalf of req.User when
// set) some action, whatever its arguments and time: for tools, the action
// names tools/list shows; for remote agents, the upstreams on which some
// remote-agent action could be permitted, whatever its skill and sizes.
// req.Action and req.Resource are ignored. A request without an enabled
// agent, or a canceled ctx, lists nothing.
func (e *Engine) Listable(ctx context.Context, req *Request, typ ResourceType) []string {
	if typ == ResourceModel {
		return e.listableModels(ctx, req)
	}
	return e.listable(ctx, req, typ, func(action, principal types.EntityUID) cedar.PolicyIterator {
		set := e.index.applicable(action, principal.ID)
		return &set
	})
}

// listable implements Listable, evaluating each resource with the policies
// policiesFor returns for its action and the request's agent.
func (e *Engine) listable(ctx context.Context, req *Request, typ ResourceType, policiesFor func(action, principal types.EntityUID) cedar.PolicyIterator) []string {
	p, ok := e.partial(req)
	if !ok {
		return nil
	}
	var out []string
	switch typ {
	case ResourceTool:
		for _, action := range e.toolList {
			if ctx.Err() != nil {
				return nil
			}
			t := target{action: action, resource: toolUID(action), tool: e.tools[action]}
			if p.permits(ctx, t, policiesFor(cedarschema.ActionUID(action), p.principal)) {
				out = append(out, action)
			}
		}
	case ResourceRemoteAgent:
		for _, name := range e.agentList {
			if ctx.Err() != nil {
				return nil
			}
			for _, a := range cedarschema.A2AActions {
				t := target{action: a.Name, resource: remoteAgentUID(name), agent: e.remoteAgents[name]}
				if p.permits(ctx, t, policiesFor(cedarschema.ActionUID(a.Name), p.principal)) {
					out = append(out, name)
					break
				}
			}
		}
	}
	return out
}

// PermittedSkills returns, in card order, the skills of remote agent
// upstream that the policies could permit req.Agent (on behalf of req.User
// when set) to send a message to (action "a2a:send_message" with
// context.skill the skill), whatever the message's sizes and time: the
// skills the agent's card shows this caller. An unknown remote agent, a
// request without an enabled agent or a canceled ctx permits none.
func (e *Engine) PermittedSkills(ctx context.Context, req *Request, upstream string) []string {
	a, ok := e.remoteAgents[upstream]
	if !ok {
		return nil
	}
	p, ok := e.partial(req)
	if !ok {
		return nil
	}
	t := target{action: cedarschema.ActionA2ASendMessage, resource: remoteAgentUID(upstream), agent: a}
	set := e.index.applicable(cedarschema.ActionUID(t.action), p.principal.ID)
	var out []string
	for _, skill := range a.skills {
		if ctx.Err() != nil {
			return nil
		}
		q := p
		q.skill = skill
		if q.permits(ctx, t, &set) {
			out = append(out, skill)
		}
	}
	return out
}

// WhoCan lists, in name order, the enabled agents for which req is
// permissible (see Permissible): those the policies could permit some call
// of req.Action on req.Resource, on behalf of req.User when set.
// req.Agent is ignored. An unknown resource is an [ErrUnknownResource],
// an action that does not apply to it or a malformed user an
// [ErrInvalidRequest].
func (e *Engine) WhoCan(ctx context.Context, req *Request) ([]string, error) {
	t, err := e.target(req.Action, req.Resource)
	if err != nil {
		return nil, err
	}
	if err := checkUser(req.User); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range e.enabled {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := e.partialContext(req, name)
		p.principal = agentUID(name)
		set := e.index.applicable(cedarschema.ActionUID(t.action), p.principal.ID)
		if p.permits(ctx, t, &set) {
			out = append(out, name)
		}
	}
	return out, nil
}

// partialRequest is the part of a batch request that does not depend on
// the resource.
type partialRequest struct {
	principal types.EntityUID
	entities  types.EntityGetter
	// context holds the attributes every action's context has.
	context types.RecordMap
	// skill, when set, is context.skill of a remote-agent request; else
	// the skill is unknown.
	skill string
}

// partial builds the resource-independent part of the batch requests for
// req; false when req has no enabled agent.
func (e *Engine) partial(req *Request) (partialRequest, bool) {
	if req == nil || req.Agent == "" {
		return partialRequest{}, false
	}
	principal := agentUID(req.Agent)
	if _, ok := e.entities[principal]; !ok {
		return partialRequest{}, false
	}
	p := e.partialContext(req, req.Agent)
	p.principal = principal
	return p, true
}

// partialContext builds the entities and context of req's batch requests
// by agent (whose learned sets are known), without the principal.
func (e *Engine) partialContext(req *Request, agent string) partialRequest {
	var entities types.EntityGetter = e.entities
	c := &req.Context
	attrs := types.RecordMap{
		cedarschema.ContextArguments: batch.Ignore(),
		cedarschema.ContextProtocol:  batch.Ignore(),
		cedarschema.ContextTime:      batch.Ignore(),
		cedarschema.ContextSourceIP:  batch.Ignore(),
		cedarschema.ContextDegraded:  types.Boolean(c.Degraded),
		// What inspection will find depends on the arguments, which a
		// list or a who-can question does not have.
		cedarschema.ContextFindings: batch.Ignore(),
	}
	if c.Protocol != "" {
		attrs[cedarschema.ContextProtocol] = types.String(c.Protocol)
	}
	if c.SourceIP.IsValid() {
		attrs[cedarschema.ContextSourceIP] = types.IPAddr(netipPrefix(c.SourceIP.Unmap()))
	}
	if req.User != nil {
		attrs[cedarschema.ContextUser] = userUID(req.User)
		entities = overlay{base: e.entities, extra: userEntity(req.User)}
	}
	if learned, ok := e.learnedFor(agent); ok {
		attrs[cedarschema.ContextLearned] = learned
	}
	return partialRequest{entities: entities, context: attrs}
}

// contextFor is the batch context of the partial request for t: for a
// remote agent the skill (unknown unless set) and the message sizes
// (unknown) join the common attributes.
func (p partialRequest) contextFor(t target) types.Record {
	if t.agent == nil {
		return types.NewRecord(p.context)
	}
	attrs := maps.Clone(p.context)
	attrs[cedarschema.ContextSkill] = batch.Ignore()
	if p.skill != "" {
		attrs[cedarschema.ContextSkill] = types.String(p.skill)
	}
	attrs[cedarschema.ContextMessageBytes] = batch.Ignore()
	attrs[cedarschema.ContextMetadataBytes] = batch.Ignore()
	return types.NewRecord(attrs)
}

// permits reports whether policies could permit the partial request on
// t; an evaluation error counts as no.
func (p partialRequest) permits(ctx context.Context, t target, policies cedar.PolicyIterator) bool {
	allowed := false
	err := batch.Authorize(ctx, policies, p.entities, batch.Request{
		Principal: p.principal,
		Action:    cedarschema.ActionUID(t.action),
		Resource:  t.resource,
		Context:   p.contextFor(t),
	}, func(r batch.Result) error {
		allowed = r.Decision == types.Allow
		return nil
	})
	return err == nil && allowed
}
