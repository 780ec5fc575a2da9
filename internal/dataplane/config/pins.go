package config

import (
	"fmt"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/toolcompat"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
)

// servedPin is a pin as the data plane serves it: every version some
// agent can be served (package toolversion), compiled.
type servedPin struct {
	pin *configv1.ToolPin
	// versions are the versions in use by number; the default is also in
	// Compiled.tools.
	versions map[int64]pipeline.Tool
	// approved are the definition hashes of every version of the pin.
	approved []string
}

// checkTool is the authz.ToolCheck of Compile: it compiles the input
// schema of one version in use (authz passes the default first) as JSON
// Schema and, when that works, records the version as the data plane
// serves it, with what it knows of the pin's other versions: which
// approved definitions exist, which of them the version's callers can be
// served by, and its deprecation. Package authz checks everything else
// about pins (upstream, name, action, versions).
func (b *builder) checkTool(action string, p *configv1.ToolPin, v *configv1.ToolVersion) error {
	if t, ok := b.prev.servedTool(action, p, v); ok {
		b.serve(action, p, t)
		return nil
	}
	compiled, err := b.inputSchema(v.GetInputSchema())
	if err != nil {
		return fmt.Errorf("input schema does not compile: %w", err)
	}
	sp := b.servedPin(action, p)
	t := pipeline.Tool{
		Kind:              pipeline.KindTool,
		Action:            action,
		Upstream:          p.GetUpstream(),
		Name:              p.GetTool(),
		Class:             v.GetClass(),
		Version:           v.GetVersion(),
		Definition:        slices.Clone(v.GetDefinition()),
		DefinitionHash:    v.GetDefinitionHash(),
		Approved:          sp.approved,
		Compatible:        compatible(p, v),
		ValidateArguments: argumentValidator(compiled),
	}
	if toolversion.Deprecated(v) {
		t.Deprecation = &pipeline.Deprecation{
			Since:       v.GetDeprecateTime().AsTime(),
			Sunset:      v.GetSunsetTime().AsTime(),
			Message:     v.GetDeprecationMessage(),
			Replacement: toolversion.Replacement(p, v),
		}
	}
	b.serve(action, p, t)
	return nil
}

// servedPin is the served pin of action, created for pin p on first use.
func (b *builder) servedPin(action string, p *configv1.ToolPin) *servedPin {
	sp := b.c.pins[action]
	if sp == nil {
		sp = &servedPin{pin: p, versions: map[int64]pipeline.Tool{}}
		for _, o := range p.GetVersions() {
			sp.approved = append(sp.approved, o.GetDefinitionHash())
		}
		b.c.pins[action] = sp
	}
	return sp
}

// serve records t, a version of pin p, as served under action; the first
// version recorded (authz checks the default first) is the default.
func (b *builder) serve(action string, p *configv1.ToolPin, t pipeline.Tool) {
	b.servedPin(action, p).versions[t.Version] = t
	if _, ok := b.c.tools[action]; !ok {
		b.c.tools[action] = t
	}
}

// compatible lists the definition hashes of the versions of p that the
// callers of v can be served by (package toolcompat): v's own, and every
// other version whose definition accepts every input v accepts and
// promises no output v does not.
func compatible(p *configv1.ToolPin, v *configv1.ToolVersion) []string {
	out := []string{v.GetDefinitionHash()}
	for _, o := range p.GetVersions() {
		if o.GetDefinitionHash() == v.GetDefinitionHash() {
			continue
		}
		rep := toolcompat.Check(toolcompat.Side{Label: "assigned", Definition: v.GetDefinition()},
			toolcompat.Side{Label: "other", Definition: o.GetDefinition()})
		if !rep.Verdict.Breaks() {
			out = append(out, o.GetDefinitionHash())
		}
	}
	return out
}

// Tool implements pipeline.Config: the version of the pinned tool named
// action that agent is served (its own assignment, else its team's, else
// the default; the default for a nil agent).
func (c *Compiled) Tool(action string, agent *configv1.Agent) (pipeline.Tool, bool) {
	t, ok := c.tools[action]
	if !ok || agent == nil {
		return t, ok
	}
	sp := c.pins[action]
	if sp == nil || len(sp.pin.GetAssignments()) == 0 {
		return t, true
	}
	v, _ := toolversion.For(sp.pin, agent.GetMeta().GetName(), agent.GetTeam())
	if vt, ok := sp.versions[v.GetVersion()]; ok {
		return vt, true
	}
	return t, true
}
