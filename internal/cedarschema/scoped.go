package cedarschema

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// ParsedSet is one policy set's source parsed without a schema (see
// ParseSet). It is immutable and safe for concurrent use: a caller may
// keep it and validate it against each new schema without parsing again.
type ParsedSet struct {
	name, filename, source string
	policies               []parsedPolicy
	// err is the set's parse error (a source over the limits or not
	// Cedar): the result of every validation.
	err *Error
}

// Matches reports whether set is the parse of source under filename.
func (set *ParsedSet) Matches(filename, source string) bool {
	return set.filename == filename && set.source == source
}

// Len is the number of policies in the set.
func (set *ParsedSet) Len() int { return len(set.policies) }

type parsedPolicy struct {
	Policy
	// static are the problems that do not depend on a schema: a
	// duplicate or empty id.
	static []Diagnostic
	// actions is what of the schema the policy's validation reads.
	actions actionRefs
}

// actionRefs is what a policy's strict validation reads of the actions of
// a schema: its action scope decides the request environments it is typed
// in (each action's context), and an action literal anywhere must be
// declared.
type actionRefs struct {
	// any is an unconstrained action scope: every action's environment.
	any bool
	// eq are the actions of an `action ==` scope and every action literal
	// in the conditions: the policy reads their declarations only.
	eq []string
	// in are the entities of an `action in` scope: the policy reads their
	// declarations and, when one is a group, its members'.
	in []string
	// other is a scope entity that is not an action (a policy that does
	// not validate against any schema).
	other bool
}

// actionRefsOf returns what of the schema's actions p's validation reads.
func actionRefsOf(p *ast.Policy) actionRefs {
	var r actionRefs
	scope := func(uid types.EntityUID, in bool) {
		switch {
		case uid.Type != TypeAction:
			r.other = true
		case in:
			r.in = append(r.in, string(uid.ID))
		default:
			r.eq = append(r.eq, string(uid.ID))
		}
	}
	switch sc := p.Action.(type) {
	case ast.ScopeTypeAll:
		r.any = true
	case ast.ScopeTypeEq:
		scope(sc.Entity, false)
	case ast.ScopeTypeIn:
		scope(sc.Entity, true)
	case ast.ScopeTypeInSet:
		for _, e := range sc.Entities {
			scope(e, true)
		}
	default:
		r.any = true // a scope this code does not know: assume everything
	}
	for _, c := range p.Conditions {
		ast.Inspect(ast.NewNode(c.Body), func(n ast.IsNode) bool {
			if v, ok := n.(ast.NodeValue); ok {
				eachValueEntity(v.Value, func(uid types.EntityUID) {
					if uid.Type == TypeAction {
						r.eq = append(r.eq, string(uid.ID))
					}
				})
			}
			return true
		})
	}
	return r
}

// affectedBy reports whether a change of the declarations of the tool
// actions changed (added, removed or retyped; sorted) can change the
// policy's validation against s, the schema after the change. A tool
// action is a leaf: only call_tool contains it, so `action in` a tool
// action other than the changed ones reads that action alone. Anything
// else in an `action in` scope (a group, an A2A or model action, a name s
// does not declare) may contain a changed action and counts as affected.
func (r actionRefs) affectedBy(s *Schema, changed []string) bool {
	if r.any || r.other {
		return true
	}
	for _, a := range r.eq {
		if _, ok := slices.BinarySearch(changed, a); ok {
			return true
		}
	}
	for _, a := range r.in {
		if _, ok := slices.BinarySearch(changed, a); ok {
			return true
		}
		if _, tool := slices.BinarySearch(s.actions, a); !tool {
			return true
		}
	}
	return false
}

// ValidateAffected validates, strictly against s, the policies of sets
// whose validation a change of the tool actions named in changed can
// change (see affectedBy), in the order of sets and of their policies, and
// returns how many it validated. It reports what ValidateAll would report
// for sets that were valid against the schema before the change: a policy
// the change does not affect validates as it did. The problems that do
// not depend on a schema (a parse error, a duplicate or empty id) are
// reported for every set, as ValidateAll does. On failure the error is an
// *Error listing every problem found.
//
// A schema change that is not a change of tool actions (learned lists,
// cluster versions) must use ValidateAll.
func (s *Schema) ValidateAffected(sets []*ParsedSet, changed []string) (int, error) {
	changed = slices.Sorted(slices.Values(changed))
	var all Error
	checked := 0
	for _, set := range sets {
		if set.err != nil {
			all.Diagnostics = append(all.Diagnostics, set.err.Diagnostics...)
			continue
		}
		for _, p := range set.policies {
			all.Diagnostics = append(all.Diagnostics, p.static...)
			if p.actions.affectedBy(s, changed) {
				checked++
				all.Diagnostics = append(all.Diagnostics, s.validatePolicy(p.Policy)...)
			}
		}
	}
	if len(all.Diagnostics) > 0 {
		return checked, &all
	}
	return checked, nil
}
