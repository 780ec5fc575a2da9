// Package pipelinetest holds a hand-written fake of pipeline.Config for
// tests of stages and protocol adapters: fixed agents (by API key), tools
// and upstreams, and a decision function.
package pipelinetest

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Config is a pipeline.Config whose answers the test sets. The zero value
// knows no agent or tool, trusts no JWT or certificate, and allows every
// operation it is asked to decide.
type Config struct {
	// V is the version.
	V uint64
	// Keys maps API keys to agents.
	Keys map[string]*configv1.Agent
	// ToolList are the pinned tools (their default versions).
	ToolList []pipeline.Tool
	// AgentTools, when an agent's name is a key, are the versions that
	// agent is served instead of ToolList's (by action; tools not in it
	// are ToolList's).
	AgentTools map[string][]pipeline.Tool
	// AgentList are the remote agents' pinned cards (Upstream names each).
	AgentList []pipeline.Tool
	// UpstreamList are the MCP upstreams (nil: one per tool upstream,
	// with the tool's prefix).
	UpstreamList []pipeline.Upstream
	// Skills are the skills Listable shows of any remote agent.
	Skills []string
	// Decide, when set, decides Authorize; nil allows.
	Decide func(c *pipeline.Call) pipeline.Decision
	// Lists, when set, filters Listable's tools; nil lists every tool.
	Lists func(c *pipeline.Call, t pipeline.Tool) bool
	// IsFrozen and FrozenReason are the emergency brake.
	IsFrozen     bool
	FrozenReason string
	// Models are the models served, by the name agents call them.
	Models map[string]pipeline.Model
	// Settings are the cluster-wide settings by key; a key not here has
	// no values.
	Settings map[string][]string
	// Rules are the inspection rules (nil: none).
	Rules *inspect.Ruleset
}

var _ pipeline.Config = (*Config)(nil)

var errNoIssuers = errors.New("no identity source is trusted for JWTs")

// Version implements pipeline.Config.
func (c *Config) Version() uint64 { return c.V }

// AgentByAPIKey implements pipeline.Config.
func (c *Config) AgentByAPIKey(key string, _ time.Time) (*configv1.Agent, bool) {
	a, ok := c.Keys[key]
	return a, ok
}

// AgentByJWT implements pipeline.Config: no JWT is trusted.
func (c *Config) AgentByJWT(context.Context, string, time.Time) (*configv1.Agent, error) {
	return nil, errNoIssuers
}

// UserByJWT implements pipeline.Config: no JWT is trusted.
func (c *Config) UserByJWT(context.Context, string, time.Time) (*pipeline.User, error) {
	return nil, errNoIssuers
}

// AgentByCert implements pipeline.Config: no certificate is trusted.
func (c *Config) AgentByCert([]*x509.Certificate, time.Time) (*configv1.Agent, error) {
	return nil, errors.New("no client certificate is trusted")
}

// Tool implements pipeline.Config.
func (c *Config) Tool(name string, agent *configv1.Agent) (pipeline.Tool, bool) {
	find := func(list []pipeline.Tool) (pipeline.Tool, bool) {
		i := slices.IndexFunc(list, func(t pipeline.Tool) bool { return t.Action == name })
		if i < 0 {
			return pipeline.Tool{}, false
		}
		return list[i], true
	}
	if agent != nil {
		if t, ok := find(c.AgentTools[agent.GetMeta().GetName()]); ok {
			return t, true
		}
	}
	return find(c.ToolList)
}

// Upstreams implements pipeline.Config.
func (c *Config) Upstreams(protocol string) []pipeline.Upstream {
	if protocol != "mcp" {
		return nil
	}
	if c.UpstreamList != nil {
		return slices.Clone(c.UpstreamList)
	}
	seen := map[string]bool{}
	var out []pipeline.Upstream
	for _, t := range c.ToolList {
		if !seen[t.Upstream] {
			seen[t.Upstream] = true
			prefix, _, _ := strings.Cut(t.Action, "__")
			out = append(out, pipeline.Upstream{Name: t.Upstream, Prefix: prefix})
		}
	}
	slices.SortFunc(out, func(a, b pipeline.Upstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Authorize implements pipeline.Config.
func (c *Config) Authorize(_ context.Context, call *pipeline.Call) pipeline.Decision {
	if c.Decide != nil {
		return c.Decide(call)
	}
	return pipeline.Decision{Allowed: true}
}

// Agent implements pipeline.Config.
func (c *Config) Agent(name string) (pipeline.Tool, bool) {
	i := slices.IndexFunc(c.AgentList, func(t pipeline.Tool) bool { return t.Upstream == name })
	if i < 0 {
		return pipeline.Tool{}, false
	}
	return c.AgentList[i], true
}

// Listable implements pipeline.Config: the tools Lists keeps, one
// content target per upstream, or a remote agent with Skills.
func (c *Config) Listable(_ context.Context, call *pipeline.Call, kind pipeline.Kind) []pipeline.Target {
	if call.Agent == nil {
		return nil
	}
	var out []pipeline.Target
	switch kind {
	case pipeline.KindTool:
		for _, t := range c.ToolList {
			t, _ = c.Tool(t.Action, call.Agent)
			if c.Lists == nil || c.Lists(call, t) {
				out = append(out, pipeline.Target{Kind: kind, Name: t.Action, Upstream: t.Upstream, Own: t.Name, Tool: t})
			}
		}
		slices.SortFunc(out, func(a, b pipeline.Target) int { return strings.Compare(a.Name, b.Name) })
	case pipeline.KindResource, pipeline.KindPrompt:
		for _, u := range c.Upstreams("mcp") {
			out = append(out, pipeline.Target{Kind: kind, Upstream: u.Name})
		}
	case pipeline.KindModel:
		for _, m := range c.Models {
			out = append(out, pipeline.Target{Kind: kind, Name: m.Name, Upstream: m.Upstream, Own: m.Own, Model: m})
		}
		slices.SortFunc(out, func(a, b pipeline.Target) int { return strings.Compare(a.Name, b.Name) })
	case pipeline.KindSkill:
		a, ok := c.Agent(call.Target.Upstream)
		if !ok {
			return nil
		}
		out = append(out, pipeline.Target{Kind: kind, Upstream: a.Upstream, Tool: a})
		for _, s := range c.Skills {
			out = append(out, pipeline.Target{Kind: kind, Upstream: a.Upstream, Name: s, Own: s, Tool: a})
		}
	}
	return out
}

// Inspection implements pipeline.Config.
func (c *Config) Inspection() *inspect.Ruleset { return c.Rules }

// Model implements pipeline.Config.
func (c *Config) Model(name string) (pipeline.Model, bool) {
	m, ok := c.Models[name]
	return m, ok
}

// Frozen implements pipeline.Config.
func (c *Config) Frozen() (bool, string) { return c.IsFrozen, c.FrozenReason }

// Setting implements pipeline.Config.
func (c *Config) Setting(name string) []string { return c.Settings[name] }
