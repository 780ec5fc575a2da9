package config

import (
	"context"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// The pipeline's view of a compiled configuration: how operations on each
// kind of target are decided and listed. Tools are decided by Cedar;
// content (resources and prompts) follows the tools: an agent may use an
// upstream's content when the policies could permit it some call of one of
// that upstream's tools (no tool grant, no content).

// Authorize implements pipeline.Config.
func (c *Compiled) Authorize(ctx context.Context, call *pipeline.Call) pipeline.Decision {
	switch call.Target.Kind {
	case pipeline.KindTool:
		if call.Op == pipeline.OpCall {
			return c.authorizeTool(call)
		}
	case pipeline.KindResource, pipeline.KindPrompt:
		if call.Op.ReadOnly() && slices.ContainsFunc(c.contentUpstreams(ctx, call), func(u pipeline.Upstream) bool {
			return u.Name == call.Target.Upstream
		}) {
			return pipeline.Decision{Allowed: true}
		}
		return pipeline.Decision{}
	}
	return pipeline.Decision{Errors: []string{"no rule decides a " + string(call.Op) + " of a " + string(call.Target.Kind)}}
}

// Listable implements pipeline.Config.
func (c *Compiled) Listable(ctx context.Context, call *pipeline.Call, kind pipeline.Kind) []pipeline.Target {
	switch kind {
	case pipeline.KindTool:
		tools := c.ListableTools(ctx, call)
		out := make([]pipeline.Target, len(tools))
		for i, t := range tools {
			out[i] = pipeline.Target{Kind: pipeline.KindTool, Name: t.Action, Upstream: t.Upstream, Own: t.Name, Tool: t}
		}
		return out
	case pipeline.KindResource, pipeline.KindPrompt:
		ups := c.contentUpstreams(ctx, call)
		out := make([]pipeline.Target, len(ups))
		for i, u := range ups {
			out[i] = pipeline.Target{Kind: kind, Upstream: u.Name}
		}
		return out
	}
	return nil
}

// contentUpstreams are the MCP upstreams with at least one approved tool
// the policies could permit call.Agent to call, in name order.
func (c *Compiled) contentUpstreams(ctx context.Context, call *pipeline.Call) []pipeline.Upstream {
	granted := map[string]bool{}
	for _, t := range c.ListableTools(ctx, call) {
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
			out = append(out, pipeline.Upstream{Name: name, Prefix: effectivePrefix(u)})
		}
	}
	slices.SortFunc(out, func(a, b pipeline.Upstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// servedProtocol is the pipeline's name of an upstream's protocol (an
// upstream registered without one is MCP).
func servedProtocol(p configv1.Protocol) string {
	if p == configv1.Protocol_PROTOCOL_UNSPECIFIED {
		return "mcp"
	}
	return protocolName(p)
}
