package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// compilePins checks every tool pin and indexes the good ones by action. It
// returns the schema generator's input for them.
func (b *builder) compilePins() []cedarschema.Tool {
	var gen []cedarschema.Tool
	owner := map[string]string{} // action → pin that claimed it
	for _, p := range b.snap.GetToolPins() {
		name := pinName(p)
		u, ok := b.c.upstreams[p.GetUpstream()]
		if !ok {
			b.problems.add("tool pin %q: upstream %q does not exist", name, p.GetUpstream())
			continue
		}
		if p.GetTool() == "" {
			b.problems.add("tool pin %q: no tool name", name)
			continue
		}
		action := cedarschema.ActionName(effectivePrefix(u), p.GetTool())
		if first, dup := owner[action]; dup {
			b.problems.add("tool pin %q: action %q is already the action of tool pin %q (two upstreams share a prefix)", name, action, first)
			continue
		}
		owner[action] = name
		// A pin refused below still declares its action, without
		// arguments, so policies naming it are not reported as well.
		entry := cedarschema.Tool{Action: action, Upstream: p.GetUpstream(), Name: p.GetTool()}
		v, err := activeVersion(p)
		if err != nil {
			b.problems.add("tool pin %q: %v", name, err)
			gen = append(gen, entry)
			continue
		}
		compiled, err := compileInputSchema(v.GetInputSchema())
		if err != nil {
			b.problems.add("tool pin %q: version %d: input schema does not compile: %v", name, v.GetVersion(), err)
			gen = append(gen, entry)
			continue
		}
		entry.InputSchema = v.GetInputSchema()
		gen = append(gen, entry)
		b.c.tools[action] = &tool{Tool: pipeline.Tool{
			Action:            action,
			Upstream:          p.GetUpstream(),
			Name:              p.GetTool(),
			Class:             v.GetClass(),
			Version:           v.GetVersion(),
			Definition:        slices.Clone(v.GetDefinition()),
			DefinitionHash:    v.GetDefinitionHash(),
			ValidateArguments: argumentValidator(compiled),
		}}
	}
	return gen
}

// pinName is how problems name a pin: its resource name, else
// "<upstream>/<tool>".
func pinName(p *configv1.ToolPin) string {
	if n := p.GetMeta().GetName(); n != "" {
		return n
	}
	return p.GetUpstream() + "/" + p.GetTool()
}

// effectivePrefix is an upstream's tool-name prefix: tool_prefix when set
// (possibly empty), else its name — the control plane's rule.
func effectivePrefix(u *configv1.Upstream) string {
	if u.ToolPrefix != nil {
		return u.GetToolPrefix()
	}
	return u.GetMeta().GetName()
}

// activeVersion is the version data planes serve: active_version, or the
// newest when it is 0.
func activeVersion(p *configv1.ToolPin) (*configv1.ToolVersion, error) {
	var newest *configv1.ToolVersion
	for _, v := range p.GetVersions() {
		if p.GetActiveVersion() != 0 && v.GetVersion() == p.GetActiveVersion() {
			return v, nil
		}
		if newest == nil || v.GetVersion() > newest.GetVersion() {
			newest = v
		}
	}
	switch {
	case p.GetActiveVersion() != 0:
		return nil, fmt.Errorf("active version %d does not exist", p.GetActiveVersion())
	case newest == nil:
		return nil, fmt.Errorf("no approved version")
	}
	return newest, nil
}

// buildSchema generates the Cedar schema from the good pins and types each
// tool's arguments from it. It reports whether policies can be checked.
func (b *builder) buildSchema(gen []cedarschema.Tool) bool {
	s, err := cedarschema.Generate(gen)
	if err != nil {
		b.problems.add("the Cedar schema cannot be generated, so no policy set was checked: %v", err)
		return false
	}
	args, err := argumentTypes(s)
	if err != nil {
		b.problems.add("the Cedar schema cannot be read back, so no policy set was checked: %v", err)
		return false
	}
	for action, t := range b.c.tools {
		rt, ok := args[action]
		if !ok {
			b.problems.add("tool %q: the Cedar schema has no arguments record for it", action)
			continue
		}
		t.args = rt
	}
	b.c.schema = s
	b.c.toolList = make([]pipeline.Tool, 0, len(b.c.tools))
	for _, t := range b.c.tools {
		b.c.toolList = append(b.c.toolList, t.Tool)
	}
	slices.SortFunc(b.c.toolList, func(x, y pipeline.Tool) int { return strings.Compare(x.Action, y.Action) })
	return true
}

// argumentTypes reads the type of context.arguments of every tool action
// back from the generated schema, so converting a call's arguments uses
// exactly the types policies were validated against.
func argumentTypes(s *cedarschema.Schema) (map[string]resolved.RecordType, error) {
	text, err := s.JSON()
	if err != nil {
		return nil, err
	}
	var parsed schema.Schema
	if err := parsed.UnmarshalJSON(text); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	res, err := parsed.Resolve()
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	out := map[string]resolved.RecordType{}
	for _, action := range s.Actions() {
		a, ok := res.Actions[cedarschema.ActionUID(action)]
		if !ok || a.AppliesTo == nil {
			continue
		}
		if rt, ok := a.AppliesTo.Context[cedarschema.ContextArguments].Type.(resolved.RecordType); ok {
			out[action] = rt
		}
	}
	return out, nil
}
