package config

import (
	"context"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// This file adapts the version's policy engine (package authz) to the
// pipeline: how operations on each kind of target are decided and listed.
// A Call becomes an authz.Request, an authz.Decision a pipeline.Decision;
// nothing else in this package knows Cedar. Tools are decided by Cedar;
// content (resources and prompts) follows the tools: an agent may use an
// upstream's content when the policies could permit it some call of one
// of that upstream's tools (no tool grant, no content).

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

// Authorize implements pipeline.Config. A tool call is decided by the
// version's policy engine (see authz.Engine.Decide): every policy set
// combined, default deny, a satisfied forbid wins; a call whose arguments
// do not fit the tool's schema is denied before any policy runs, and the
// arguments it decodes are recorded on the call for the Validate stage.
// Reading content, getting a prompt, asking for completions of a prompt's
// or a resource template's arguments and subscribing to a resource are
// allowed when the agent may use the upstream's content; unsubscribing is
// allowed to any agent (it only ends what the agent itself follows, and a
// policy that no longer grants the upstream must not keep it following).
func (c *Compiled) Authorize(ctx context.Context, call *pipeline.Call) pipeline.Decision {
	switch call.Target.Kind {
	case pipeline.KindTool:
		if call.Op == pipeline.OpCall {
			req := request(call)
			eng, candidate := c.engineFor(req.Agent)
			d := eng.Decide(ctx, &req)
			if args, ok := req.DecodedArguments(); ok {
				call.SetDecodedArguments(args)
			}
			versions := c.versions
			if candidate {
				versions = c.rollout.versions
			}
			return decision(d, candidate, versions)
		}
	case pipeline.KindModel:
		if call.Op == pipeline.OpCall {
			req := modelRequest(call)
			d := c.engine.Decide(ctx, &req)
			return pipeline.Decision{Allowed: d.Allowed, Policies: d.Policies, Errors: d.Errors}
		}
	case pipeline.KindResource, pipeline.KindPrompt:
		switch call.Op {
		case pipeline.OpUnsubscribe:
			return pipeline.Decision{Allowed: call.Agent != nil}
		case pipeline.OpRead, pipeline.OpGet, pipeline.OpComplete, pipeline.OpSubscribe:
			if slices.ContainsFunc(c.contentUpstreams(ctx, call), func(u pipeline.Upstream) bool {
				return u.Name == call.Target.Upstream
			}) {
				return pipeline.Decision{Allowed: true}
			}
			return pipeline.Decision{}
		}
	case pipeline.KindAgent:
		action, ok := agentActions[call.Op]
		if !ok {
			break
		}
		req := agentRequest(call, action)
		d := c.engine.Decide(ctx, &req)
		return pipeline.Decision{Allowed: d.Allowed, Policies: d.Policies, Errors: d.Errors}
	}
	return pipeline.Decision{Errors: []string{"no rule decides a " + string(call.Op) + " of a " + string(call.Target.Kind)}}
}

// Listable implements pipeline.Config: for tools, the servable tools, in
// name order, that the policies could permit some call by call.Agent to
// make — on behalf of call.User when set — whatever the call's arguments
// and time (see authz.Engine.Listable); for content, the MCP upstreams
// whose content the agent may use. A call without an enabled agent lists
// nothing.
func (c *Compiled) Listable(ctx context.Context, call *pipeline.Call, kind pipeline.Kind) []pipeline.Target {
	switch kind {
	case pipeline.KindTool:
		tools := c.listableTools(ctx, call)
		out := make([]pipeline.Target, len(tools))
		for i, t := range tools {
			out[i] = pipeline.Target{Kind: pipeline.KindTool, Name: t.Action, Upstream: t.Upstream, Own: t.Name, Tool: t}
		}
		return out
	case pipeline.KindModel:
		if call == nil {
			return nil
		}
		req := request(call)
		names := c.engine.Listable(ctx, &req, authz.ResourceModel)
		out := make([]pipeline.Target, 0, len(names))
		for _, n := range names {
			if m, ok := c.models[n]; ok {
				out = append(out, pipeline.Target{Kind: kind, Name: n, Upstream: m.Upstream, Own: m.Own, Model: m})
			}
		}
		return out
	case pipeline.KindResource, pipeline.KindPrompt:
		ups := c.contentUpstreams(ctx, call)
		out := make([]pipeline.Target, len(ups))
		for i, u := range ups {
			out[i] = pipeline.Target{Kind: kind, Upstream: u.Name}
		}
		return out
	case pipeline.KindSkill:
		return c.listableSkills(ctx, call)
	}
	return nil
}

// agentActions are the remote-agent actions of the operations on a
// remote agent.
var agentActions = map[pipeline.Operation]string{
	pipeline.OpCall:      cedarschema.ActionA2ASendMessage,
	pipeline.OpCancel:    cedarschema.ActionA2ACancelTask,
	pipeline.OpGet:       cedarschema.ActionA2AGetTask,
	pipeline.OpQuery:     cedarschema.ActionA2AListTasks,
	pipeline.OpSubscribe: cedarschema.ActionA2ASubscribeTask,
}

// listableSkills lists remote agent call.Target.Upstream for call.Agent:
// the agent itself (Name "") when some remote-agent action on it could be
// permitted, then, in card order, the skills a message could be sent to.
func (c *Compiled) listableSkills(ctx context.Context, call *pipeline.Call) []pipeline.Target {
	if call == nil {
		return nil
	}
	agent, ok := c.agents[call.Target.Upstream]
	if !ok {
		return nil
	}
	req := request(call)
	if !slices.Contains(c.engine.Listable(ctx, &req, authz.ResourceRemoteAgent), agent.Upstream) {
		return nil
	}
	out := []pipeline.Target{{Kind: pipeline.KindSkill, Upstream: agent.Upstream, Tool: agent}}
	for _, s := range c.engine.PermittedSkills(ctx, &req, agent.Upstream) {
		out = append(out, pipeline.Target{Kind: pipeline.KindSkill, Upstream: agent.Upstream, Name: s, Own: s, Tool: agent})
	}
	return out
}

// agentRequest is the authz request of an operation on a remote agent.
func agentRequest(call *pipeline.Call, action string) authz.Request {
	req := request(call)
	req.Action, req.Resource, req.Arguments = action, authz.RemoteAgentResource(call.Target.Upstream), nil
	if m := call.Message; m != nil {
		req.Context.Skill, req.Context.MessageBytes, req.Context.MetadataBytes = m.Skill, m.Bytes, m.MetadataBytes
	}
	return req
}

// listableTools are the tools Listable lists.
func (c *Compiled) listableTools(ctx context.Context, call *pipeline.Call) []pipeline.Tool {
	if call == nil {
		return nil
	}
	req := request(call)
	eng, _ := c.engineFor(req.Agent)
	var out []pipeline.Tool
	for _, action := range eng.Listable(ctx, &req, authz.ResourceTool) {
		if t, ok := c.Tool(action, call.Agent); ok {
			out = append(out, t)
		}
	}
	return out
}

// contentUpstreams are the MCP upstreams with at least one approved tool
// the policies could permit call.Agent to call, in name order.
func (c *Compiled) contentUpstreams(ctx context.Context, call *pipeline.Call) []pipeline.Upstream {
	granted := map[string]bool{}
	for _, t := range c.listableTools(ctx, call) {
		granted[t.Upstream] = true
	}
	all := c.Upstreams("mcp")
	out := all[:0]
	for _, u := range all {
		if granted[u.Name] {
			out = append(out, u)
		}
	}
	return out
}

// Upstreams implements pipeline.Config.
func (c *Compiled) Upstreams(protocol string) []pipeline.Upstream {
	var out []pipeline.Upstream
	for name, u := range c.upstreams {
		if servedProtocol(u.GetProtocol()) == protocol {
			out = append(out, pipeline.Upstream{Name: name, Prefix: authz.EffectivePrefix(u)})
		}
	}
	slices.SortFunc(out, func(a, b pipeline.Upstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// servedProtocol is the pipeline's name of an upstream's protocol (an
// upstream registered without one is MCP).
func servedProtocol(p configv1.Protocol) string {
	switch p {
	case configv1.Protocol_PROTOCOL_A2A:
		return "a2a"
	case configv1.Protocol_PROTOCOL_LLM:
		return "llm"
	}
	return "mcp"
}

// modelRequest is the authz request of a model call: the agent calling
// the model call.Target.Name with what the call asks for, and its worst
// case at the model's price when it has one.
func modelRequest(call *pipeline.Call) authz.Request {
	req := request(call)
	req.Action = ""
	req.Resource = authz.ModelResource(call.Target.Name)
	req.Arguments = nil
	req.Context.Model = authz.ModelContext{
		MaxTokens: call.Demand.OutputTokens, InputTokens: call.Demand.InputTokens,
		Stream: call.Stream, Tools: call.Tools,
	}
	if p := call.Target.Model.PriceAt(call.Start); p != nil {
		cost := p.Cost(pipeline.Usage{InputTokens: call.Demand.InputTokens, OutputTokens: call.Demand.OutputTokens})
		req.Context.Model.EstimatedCostNanos = &cost
	}
	return req
}

// request is the authz request of a tool call: the agent (on behalf of
// the user) calling the tool call.Target.Name with call.Arguments.
func request(call *pipeline.Call) authz.Request {
	req := authz.Request{
		Action:    call.Target.Name,
		Resource:  authz.ToolResource(call.Target.Name),
		Arguments: call.Arguments,
		Context: authz.Context{
			Protocol: call.Protocol,
			Time:     call.Start,
			SourceIP: call.SourceIP,
			Degraded: call.Mode == configsyncv1.Mode_MODE_DEGRADED,
			Findings: call.PolicyFindings,
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
