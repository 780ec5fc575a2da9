package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
)

// Compile compiles the parts of snap that authorization reads — agents,
// upstreams, tool pins, value lists, learned lists and policy sets;
// credentials, keys and identity sources are ignored — into an Engine. It
// checks them completely and, on failure, returns an [*Error] naming every
// problem.
//
// The data plane compiles the snapshots it serves; the control plane and
// gwctl compile the authorization snapshot (the same data without secrets),
// so all three decide alike.
func Compile(snap *snapshotv1.Snapshot, opts ...Option) (*Engine, error) {
	o := options{cacheSize: DefaultDecisionCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	b := &builder{
		snap:      snap,
		opts:      o,
		upstreams: map[string]*configv1.Upstream{},
		lists:     map[string]*configv1.ValueList{},
		e: &Engine{
			version:      snap.GetVersion(),
			agents:       map[string]bool{},
			tools:        map[string]*tool{},
			remoteAgents: map[string]*remoteAgent{},
		},
	}
	b.indexUpstreams()
	b.indexModels()
	b.indexAgents()
	b.indexLists()
	learned := b.indexLearnings()
	pins := b.compilePins()
	if b.buildSchema(pins, learned) {
		b.compilePolicies()
	}
	if len(b.problems) > 0 {
		return nil, &Error{Version: snap.GetVersion(), Problems: b.problems}
	}
	e := b.e
	if b.entitiesUnchanged() {
		prev := o.prev
		e.learned, e.entities, b.src.teams = prev.learned, prev.entities, prev.src.teams
	} else {
		e.learned = b.compileLearned()
		e.entities = b.entities()
		b.src.teams = b.agentTeams()
	}
	e.index = buildIndex(e.policies, e.schema.ActionEntities(), b.src.teams)
	e.cache = newDecisionCache(o.cacheSize)
	b.src.agents, b.src.upstreams, b.src.pins = snap.GetAgents(), snap.GetUpstreams(), snap.GetToolPins()
	b.src.lists, b.src.learnings = snap.GetValueLists(), snap.GetListLearnings()
	e.src = &b.src
	return e, nil
}

// builder accumulates an Engine and the problems found on the way. Each
// step checks what it can and records every problem, so one error names
// everything wrong.
type builder struct {
	snap      *snapshotv1.Snapshot
	opts      options
	e         *Engine
	upstreams map[string]*configv1.Upstream
	lists     map[string]*configv1.ValueList
	learnings []*configv1.ListLearning
	problems  []string

	// src collects what the engine is compiled from (see WithPrevious).
	src sources
	// schemaReused is set when the schema is the previous engine's.
	schemaReused bool
	// known and prevAgents index the previous engine's policy texts and
	// agents, built when first needed.
	known      map[string]*cedar.Policy
	prevAgents map[string]*configv1.Agent
}

func (b *builder) problem(format string, args ...any) {
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func (b *builder) indexUpstreams() {
	for _, u := range b.snap.GetUpstreams() {
		name := u.GetMeta().GetName()
		if name == "" {
			b.problem("an upstream has no name")
			continue
		}
		if _, dup := b.upstreams[name]; dup {
			b.problem("upstream %q appears twice", name)
			continue
		}
		b.upstreams[name] = u
	}
}

func (b *builder) indexAgents() {
	if b.agentsUnchanged() {
		// The previous version indexed these very agents without a
		// problem.
		b.e.agents, b.e.enabled = b.opts.prev.agents, b.opts.prev.enabled
		return
	}
	for _, a := range b.snap.GetAgents() {
		name := a.GetMeta().GetName()
		if name == "" {
			b.problem("an agent has no name")
			continue
		}
		if _, dup := b.e.agents[name]; dup {
			b.problem("agent %q appears twice", name)
			continue
		}
		b.e.agents[name] = !a.GetDisabled()
		if !a.GetDisabled() {
			b.e.enabled = append(b.e.enabled, name)
		}
	}
	slices.Sort(b.e.enabled)
}

// indexLists indexes the value lists by name. The control plane has
// checked each list's values; a list that appears twice or has no name
// means the snapshot is not one it built.
func (b *builder) indexLists() {
	for _, l := range b.snap.GetValueLists() {
		name := l.GetMeta().GetName()
		if name == "" {
			b.problem("a value list has no name")
			continue
		}
		if _, dup := b.lists[name]; dup {
			b.problem("value list %q appears twice", name)
			continue
		}
		b.lists[name] = l
	}
}

// compilePins checks every tool pin and indexes the good ones by action. It
// returns the schema generator's input for them.
func (b *builder) compilePins() []cedarschema.Tool {
	var gen []cedarschema.Tool
	owner := map[string]string{} // action → pin that claimed it
	for _, p := range b.snap.GetToolPins() {
		name := PinName(p)
		u, ok := b.upstreams[p.GetUpstream()]
		if !ok {
			b.problem("tool pin %q: upstream %q does not exist", name, p.GetUpstream())
			continue
		}
		if p.GetTool() == "" {
			b.problem("tool pin %q: no tool name", name)
			continue
		}
		if card := p.GetKind() == configv1.PinKind_PIN_KIND_AGENT_CARD; card || u.GetProtocol() == configv1.Protocol_PROTOCOL_A2A {
			b.compileCardPin(name, u, p)
			continue
		}
		action := cedarschema.ActionName(EffectivePrefix(u), p.GetTool())
		if first, dup := owner[action]; dup {
			b.problem("tool pin %q: action %q is already the action of tool pin %q (two upstreams share a prefix)", name, action, first)
			continue
		}
		owner[action] = name
		// A pin refused below still declares its action, without
		// arguments, so policies naming it are not reported as well.
		entry := cedarschema.Tool{Action: action, Upstream: p.GetUpstream(), Name: p.GetTool()}
		v, err := ActiveVersion(p)
		if err != nil {
			b.problem("tool pin %q: %v", name, err)
			gen = append(gen, entry)
			continue
		}
		// Every version agents can be served is vetted, the default
		// first, and types the tool's arguments.
		inUse := append([]*configv1.ToolVersion{v}, slices.DeleteFunc(toolversion.InUse(p), func(o *configv1.ToolVersion) bool { return o == v })...)
		if check := b.opts.checkTool; check != nil {
			var failed bool
			for _, iv := range inUse {
				if err := check(action, p, iv); err != nil {
					b.problem("tool pin %q: version %d: %v", name, iv.GetVersion(), err)
					failed = true
				}
			}
			if failed {
				gen = append(gen, entry)
				continue
			}
		}
		entry.InputSchema = v.GetInputSchema()
		for _, iv := range inUse[1:] {
			entry.OtherInputSchemas = append(entry.OtherInputSchemas, iv.GetInputSchema())
		}
		gen = append(gen, entry)
		b.e.tools[action] = &tool{
			action:   action,
			upstream: p.GetUpstream(),
			name:     p.GetTool(),
			readOnly: v.GetClass() == configv1.ToolClass_TOOL_CLASS_READ_ONLY,
			version:  v.GetVersion(),
		}
	}
	return gen
}

// compileCardPin checks the agent-card pin p of upstream u and records u as
// a remote agent. An A2A upstream's only pin is its card, and only an A2A
// upstream has one.
func (b *builder) compileCardPin(name string, u *configv1.Upstream, p *configv1.ToolPin) {
	switch {
	case p.GetKind() != configv1.PinKind_PIN_KIND_AGENT_CARD:
		b.problem("tool pin %q: upstream %q speaks A2A; its only pin is its agent card", name, p.GetUpstream())
		return
	case u.GetProtocol() != configv1.Protocol_PROTOCOL_A2A:
		b.problem("tool pin %q: an agent card is pinned for upstream %q, which does not speak A2A", name, p.GetUpstream())
		return
	case p.GetTool() != toolpin.AgentCardTool:
		b.problem("tool pin %q: an agent card pin is named %q", name, toolpin.AgentCardTool)
		return
	}
	v, err := ActiveVersion(p)
	if err != nil {
		b.problem("tool pin %q: %v", name, err)
		return
	}
	skills, err := toolpin.CardSkills(v.GetDefinition())
	if err != nil {
		b.problem("tool pin %q: version %d: %v", name, v.GetVersion(), err)
		return
	}
	if _, dup := b.e.remoteAgents[p.GetUpstream()]; dup {
		b.problem("tool pin %q: upstream %q has two agent cards pinned", name, p.GetUpstream())
		return
	}
	b.e.remoteAgents[p.GetUpstream()] = &remoteAgent{
		name:     p.GetUpstream(),
		readOnly: v.GetClass() == configv1.ToolClass_TOOL_CLASS_READ_ONLY,
		version:  v.GetVersion(),
		skills:   skills,
	}
	b.e.agentList = append(b.e.agentList, p.GetUpstream())
	slices.Sort(b.e.agentList)
}

// PinName is how problems name a pin: its resource name, else
// "<upstream>/<tool>".
func PinName(p *configv1.ToolPin) string {
	if n := p.GetMeta().GetName(); n != "" {
		return n
	}
	return p.GetUpstream() + "/" + p.GetTool()
}

// EffectivePrefix is an upstream's tool-name prefix: tool_prefix when set
// (possibly empty), else its name — the control plane's rule.
func EffectivePrefix(u *configv1.Upstream) string {
	if u.ToolPrefix != nil {
		return u.GetToolPrefix()
	}
	return u.GetMeta().GetName()
}

// ActiveVersion is the version of a pin that is served: active_version,
// or the newest when it is 0.
func ActiveVersion(p *configv1.ToolPin) (*configv1.ToolVersion, error) {
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
func (b *builder) buildSchema(gen []cedarschema.Tool, learned []string) bool {
	var s *cedarschema.Schema
	var args map[string]resolved.RecordType
	if p := b.prevSources(); p != nil && sameGen(p.gen, gen) && slices.Equal(p.learned, learned) {
		s, args, b.schemaReused = b.opts.prev.schema, p.args, true
	} else {
		var err error
		s, err = cedarschema.Generate(gen, cedarschema.WithLearned(learned))
		if err != nil {
			b.problem("the Cedar schema cannot be generated, so no policy set was checked: %v", err)
			return false
		}
		args, err = argumentTypes(s)
		if err != nil {
			b.problem("the Cedar schema cannot be read back, so no policy set was checked: %v", err)
			return false
		}
	}
	b.src.gen, b.src.learned, b.src.args = gen, learned, args
	for action, t := range b.e.tools {
		rt, ok := args[action]
		if !ok {
			b.problem("tool %q: the Cedar schema has no arguments record for it", action)
			continue
		}
		t.args = rt
	}
	b.e.schema = s
	b.e.toolList = make([]string, 0, len(b.e.tools))
	for action := range b.e.tools {
		b.e.toolList = append(b.e.toolList, action)
	}
	slices.SortFunc(b.e.toolList, strings.Compare)
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
