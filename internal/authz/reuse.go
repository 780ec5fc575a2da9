package authz

import (
	"bytes"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Compiling incrementally. A data plane compiles every configuration
// version it is sent, and at scale (thousands of agents and policies) most
// of a compile is spent rebuilding what the previous version already
// holds. [WithPrevious] hands Compile the engine of the previous version,
// and Compile reuses each part whose inputs are unchanged:
//
//   - the generated Cedar schema and the tools' argument types, when the
//     schema generator's input (every pin's action and input schemas, and
//     the learned lists) is equal;
//   - a parsed and validated policy set, when the schema is reused and the
//     set's name, file name and source are equal; in a changed set, the
//     parse and validation of each policy whose text the previous version
//     had (cedarschema.ParsePoliciesKnown);
//   - the agents' index, their entities, the entity store and the learned
//     lists, when the snapshot's agents, upstreams, pins, value lists and
//     learned lists are the same messages as the previous version's (and
//     the schema is reused); otherwise each agent's entity, when its
//     message is the same as the previous version's.
//
// The last keys on message identity, not content: it relies on the
// snapshot's messages being immutable, as the data plane's compile keeps
// them (it shares every unchanged message with the previous version, see
// package config). Everything else is keyed by content. The decision
// cache and the policy index are always new. The result decides, lists
// and explains exactly as a compile from scratch does (TestIncremental).

// WithPrevious has Compile reuse what prev, the engine of an earlier
// version, compiled from inputs the new snapshot has unchanged. prev is
// only read; it keeps serving while the new version compiles. A nil prev
// compiles from scratch. The snapshot's messages that are prev's own (the
// same pointers) must not have been modified since prev was compiled.
func WithPrevious(prev *Engine) Option {
	return func(o *options) { o.prev = prev }
}

// sources are the inputs an Engine was compiled from that a later compile
// compares its own with (see WithPrevious). The slices share the
// snapshot's messages; nothing here is a copy.
type sources struct {
	// gen and learned are the schema generator's input.
	gen     []cedarschema.Tool
	learned []string
	// args are the argument types read back from the schema, by action.
	args map[string]resolved.RecordType
	// sets are the compiled policy sets by name.
	sets map[string]compiledSet
	// The snapshot's messages the entities are built from.
	agents    []*configv1.Agent
	upstreams []*configv1.Upstream
	pins      []*configv1.ToolPin
	lists     []*configv1.ValueList
	learnings []*configv1.ListLearning
	// teams is each enabled agent's team, for the policy index.
	teams map[types.String]types.String
}

// compiledSet is one policy set as compiled, with what it was compiled
// from.
type compiledSet struct {
	filename, source string
	parsed           *cedarschema.PolicySet
}

// sameGen reports whether two schema generator inputs are equal.
func sameGen(a, b []cedarschema.Tool) bool {
	return slices.EqualFunc(a, b, func(x, y cedarschema.Tool) bool {
		return x.Action == y.Action && x.Upstream == y.Upstream && x.Name == y.Name &&
			bytes.Equal(x.InputSchema, y.InputSchema) &&
			slices.EqualFunc(x.OtherInputSchemas, y.OtherInputSchemas, bytes.Equal)
	})
}

// sameMessages reports whether a and b hold the same messages (pointers)
// in the same order.
func sameMessages[T comparable](a, b []T) bool {
	return slices.Equal(a, b)
}

// prevSources are the previous engine's sources, nil without one.
func (b *builder) prevSources() *sources {
	if b.opts.prev == nil {
		return nil
	}
	return b.opts.prev.src
}

// agentsUnchanged reports whether the snapshot's agents are the previous
// version's messages, in the same order.
func (b *builder) agentsUnchanged() bool {
	p := b.prevSources()
	return p != nil && sameMessages(p.agents, b.snap.GetAgents())
}

// entitiesUnchanged reports whether every input of the entity store is
// the previous version's: the same messages and the same schema.
func (b *builder) entitiesUnchanged() bool {
	p := b.prevSources()
	return p != nil && b.schemaReused &&
		sameMessages(p.agents, b.snap.GetAgents()) &&
		sameMessages(p.upstreams, b.snap.GetUpstreams()) &&
		sameMessages(p.pins, b.snap.GetToolPins()) &&
		sameMessages(p.lists, b.snap.GetValueLists()) &&
		sameMessages(p.learnings, b.snap.GetListLearnings())
}

// knownPolicies returns the cedarschema.Known of every policy the
// previous version parsed and validated, by text, when the schema is the
// previous version's (else nil: parse and validate everything). The map
// is built once per compile, on the first changed set.
func (b *builder) knownPolicies() cedarschema.Known {
	p := b.prevSources()
	if p == nil || !b.schemaReused {
		return nil
	}
	if b.known == nil {
		b.known = map[string]*cedar.Policy{}
		for _, s := range p.sets {
			cedarschema.EachPolicyText(s.source, s.parsed, func(text string, p *cedar.Policy) { b.known[text] = p })
		}
	}
	return func(text []byte) (*cedar.Policy, bool) {
		if len(text) == 0 {
			return nil, false
		}
		p, ok := b.known[string(text)]
		return p, ok
	}
}

// reusedAgentEntity is the previous version's entity of agent a when a is
// the same message the previous version had under its name.
func (b *builder) reusedAgentEntity(a *configv1.Agent) (types.Entity, bool) {
	p := b.prevSources()
	if p == nil {
		return types.Entity{}, false
	}
	if b.prevAgents == nil {
		b.prevAgents = make(map[string]*configv1.Agent, len(p.agents))
		for _, pa := range p.agents {
			b.prevAgents[pa.GetMeta().GetName()] = pa
		}
	}
	name := a.GetMeta().GetName()
	if b.prevAgents[name] != a {
		return types.Entity{}, false
	}
	e, ok := b.opts.prev.entities[agentUID(name)]
	return e, ok
}
