package authz

import (
	"iter"
	"maps"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// policyIndex buckets the version's policies by the requests their scopes
// can match, so a decision evaluates only the policies that could apply.
//
// A policy goes into one action class — each action its scope names when it
// is `action == A`, `action in A` or `action in [A, …]` with every A a leaf
// action (no action has it as parent), otherwise "all actions" — and within
// that into one principal class: agent x for `principal == Agent::"x"`, team
// t for `principal in Team::"t"`, otherwise "any principal".
//
// Sound because Cedar ANDs the scope before the conditions and short-circuits
// (a policy whose scope does not hold neither applies nor errors), and a
// request's principal is Agent::"<name>" whose only ancestor is its team, and
// its action a leaf: a policy left out of [policyIndex.applicable] has a
// scope that cannot hold for the request.
type policyIndex struct {
	actions map[types.EntityUID]*principalIndex
	all     principalIndex
	// teams is each enabled agent's team ("" for none).
	teams map[types.String]types.String
}

// principalIndex splits one action class by principal scope.
type principalIndex struct {
	agents map[types.String]*bucket
	teams  map[types.String]*bucket
	any    *bucket
}

// bucket is the policies of one action and principal class, with what
// their conditions read from the context.
type bucket struct {
	policies []policyEntry
	reads    contextReads
}

// policyEntry is one policy and its gateway-wide id.
type policyEntry struct {
	id     cedar.PolicyID
	policy *cedar.Policy
}

// buildIndex indexes policies; actions are the schema's action entities,
// teams each enabled agent's team.
func buildIndex(policies *cedar.PolicySet, actions types.EntityMap, teams map[types.String]types.String) *policyIndex {
	groups := map[types.EntityUID]bool{}
	for _, e := range actions {
		for p := range e.Parents.All() {
			groups[p] = true
		}
	}
	x := &policyIndex{actions: map[types.EntityUID]*principalIndex{}, teams: teams}
	// Sorted so bucket order, and with it a cache key's layout, does not
	// depend on map iteration.
	all := maps.Collect(policies.All())
	for _, id := range slices.Sorted(maps.Keys(all)) {
		p := all[id]
		a := (*ast.Policy)(p.AST())
		entry := policyEntry{id: id, policy: p}
		reads := readsOf(a)
		leaves, ok := actionLeaves(a.Action, groups)
		if !ok {
			x.all.add(a.Principal, entry, reads)
			continue
		}
		for _, uid := range leaves {
			pi := x.actions[uid]
			if pi == nil {
				pi = &principalIndex{}
				x.actions[uid] = pi
			}
			pi.add(a.Principal, entry, reads)
		}
	}
	x.all.finish()
	for _, pi := range x.actions {
		pi.finish()
	}
	return x
}

// actionLeaves lists the actions an action scope can match when they are
// all leaves; false means the scope goes into "all actions".
func actionLeaves(scope ast.IsActionScopeNode, groups map[types.EntityUID]bool) ([]types.EntityUID, bool) {
	var uids []types.EntityUID
	switch s := scope.(type) {
	case ast.ScopeTypeEq:
		return []types.EntityUID{s.Entity}, true
	case ast.ScopeTypeIn:
		uids = []types.EntityUID{s.Entity}
	case ast.ScopeTypeInSet:
		uids = s.Entities
	default:
		return nil, false
	}
	if len(uids) == 0 {
		return nil, false
	}
	for _, uid := range uids {
		if groups[uid] {
			return nil, false
		}
	}
	uids = slices.Clone(uids)
	slices.SortFunc(uids, compareUID)
	return slices.CompactFunc(uids, func(a, b types.EntityUID) bool { return a == b }), true
}

func compareUID(a, b types.EntityUID) int {
	if a.Type != b.Type {
		if a.Type < b.Type {
			return -1
		}
		return 1
	}
	switch {
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}

func (pi *principalIndex) add(scope ast.IsPrincipalScopeNode, e policyEntry, reads contextReads) {
	var b **bucket
	switch s := scope.(type) {
	case ast.ScopeTypeEq:
		if s.Entity.Type == cedarschema.TypeAgent {
			b = slot(&pi.agents, s.Entity.ID)
		}
	case ast.ScopeTypeIn:
		if s.Entity.Type == cedarschema.TypeTeam {
			b = slot(&pi.teams, s.Entity.ID)
		}
	}
	if b == nil {
		b = &pi.any
	}
	if *b == nil {
		*b = &bucket{}
	}
	(*b).policies = append((*b).policies, e)
	(*b).reads.merge(reads)
}

// slot is the bucket of key in *m, creating the map.
func slot(m *map[types.String]*bucket, key types.String) **bucket {
	if *m == nil {
		*m = map[types.String]*bucket{}
	}
	b := (*m)[key]
	if b == nil {
		b = &bucket{}
		(*m)[key] = b
	}
	return &b
}

func (pi *principalIndex) finish() {
	for _, b := range pi.agents {
		b.reads.finish()
	}
	for _, b := range pi.teams {
		b.reads.finish()
	}
	if pi.any != nil {
		pi.any.reads.finish()
	}
}

// applicable returns the buckets whose policies can apply to agent calling
// action; nil entries are empty. Every policy is in at most one of them.
func (x *policyIndex) applicable(action types.EntityUID, agent types.String) applicable {
	var out applicable
	team := x.teams[agent]
	pick := func(i int, pi *principalIndex) {
		out[i] = pi.agents[agent]
		if team != "" {
			out[i+1] = pi.teams[team]
		}
		out[i+2] = pi.any
	}
	pick(0, &x.all)
	if pi := x.actions[action]; pi != nil {
		pick(3, pi)
	}
	return out
}

// applicable is the buckets of one request; it is a [cedar.PolicyIterator]
// over their policies.
type applicable [6]*bucket

var _ cedar.PolicyIterator = (*applicable)(nil)

// All implements cedar.PolicyIterator.
func (a *applicable) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, b := range a {
			if b == nil {
				continue
			}
			for _, e := range b.policies {
				if !yield(e.id, e.policy) {
					return
				}
			}
		}
	}
}

// reads merges what the buckets' policies read from the context.
func (a *applicable) reads() contextReads {
	var r contextReads
	for _, b := range a {
		if b != nil {
			r.uncacheable = r.uncacheable || b.reads.uncacheable
			r.flags |= b.reads.flags
		}
	}
	return r
}
