package authz

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Learned lists: context.learned is a record with one Set<String> per
// learned list (config.v1.ListLearning), present only while some list
// learns. The caller's set of a list is the list's own values (which
// count in every scope) together with the values learned in the caller's
// scope: its own ("agent:<name>"), its team's ("team:<team>"; an agent
// without a team has none) or the global one ("global"), as the list's
// scope says. The sets are part of the configuration version, like value
// lists: a learned value reaches policy with the next snapshot, and the
// decision cache (keyed on the agent) needs no more than the agent.

// Scope keys, as config.v1.LearnedSet.scope writes them.
const (
	scopeAgentPrefix = "agent:"
	scopeTeamPrefix  = "team:"
	scopeGlobal      = "global"
)

// learnedSets holds the compiled learned lists of one version.
type learnedSets struct {
	names []string
	// byAgent is each enabled agent's context.learned record.
	byAgent map[string]types.Record
	// none is the record of an agent the version does not know: every
	// list's own values.
	none types.Record
}

// indexLearnings checks the learned lists of the snapshot. It returns
// their names, sorted, for the schema.
func (b *builder) indexLearnings() []string {
	seen := map[string]bool{}
	var names []string
	for _, l := range b.snap.GetListLearnings() {
		name := l.GetMeta().GetName()
		switch {
		case name == "":
			b.problem("a learned list has no name")
			continue
		case seen[name]:
			b.problem("learned list %q appears twice", name)
			continue
		case b.lists[name] == nil:
			b.problem("learned list %q: value list %q does not exist", name, name)
			continue
		}
		seen[name] = true
		names = append(names, name)
		b.learnings = append(b.learnings, l)
	}
	slices.Sort(names)
	return names
}

// compileLearned builds every enabled agent's context.learned record.
// Sets are built once per list and scope and shared by the agents of the
// scope (Cedar values are immutable).
func (b *builder) compileLearned() *learnedSets {
	if len(b.learnings) == 0 {
		return nil
	}
	ls := &learnedSets{byAgent: map[string]types.Record{}}
	type key struct{ list, scope string }
	sets := map[key]types.Set{}
	setOf := func(l *configv1.ListLearning, scope string) types.Set {
		k := key{l.GetMeta().GetName(), scope}
		if s, ok := sets[k]; ok {
			return s
		}
		own := b.lists[k.list].GetValues()
		var learned []string
		for _, s := range l.GetSets() {
			if s.GetScope() == scope {
				learned = s.GetValues()
				break
			}
		}
		vals := make([]types.Value, 0, len(own)+len(learned))
		for _, v := range own {
			vals = append(vals, types.String(v))
		}
		for _, v := range learned {
			vals = append(vals, types.String(v))
		}
		s := types.NewSet(vals...)
		sets[k] = s
		return s
	}
	for _, l := range b.learnings {
		ls.names = append(ls.names, l.GetMeta().GetName())
	}
	none := types.RecordMap{}
	for _, l := range b.learnings {
		none[types.String(l.GetMeta().GetName())] = setOf(l, "")
	}
	ls.none = types.NewRecord(none)
	for _, a := range b.snap.GetAgents() {
		if a.GetDisabled() {
			continue
		}
		rec := make(types.RecordMap, len(b.learnings))
		for _, l := range b.learnings {
			rec[types.String(l.GetMeta().GetName())] = setOf(l, scopeOf(l.GetScope(), a))
		}
		ls.byAgent[a.GetMeta().GetName()] = types.NewRecord(rec)
	}
	return ls
}

// scopeOf is the scope agent a reads a list of the given scope kind from
// ("" for none).
func scopeOf(kind configv1.LearningScope, a *configv1.Agent) string {
	switch kind {
	case configv1.LearningScope_LEARNING_SCOPE_AGENT:
		return scopeAgentPrefix + a.GetMeta().GetName()
	case configv1.LearningScope_LEARNING_SCOPE_TEAM:
		if a.GetTeam() != "" {
			return scopeTeamPrefix + a.GetTeam()
		}
	case configv1.LearningScope_LEARNING_SCOPE_GLOBAL:
		return scopeGlobal
	}
	return ""
}

// learnedFor is agent's context.learned, and false when no list learns.
func (e *Engine) learnedFor(agent string) (types.Record, bool) {
	if e.learned == nil {
		return types.Record{}, false
	}
	if r, ok := e.learned.byAgent[agent]; ok {
		return r, true
	}
	return e.learned.none, true
}
