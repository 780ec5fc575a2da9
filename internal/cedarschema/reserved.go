package cedarschema

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// mentionsPlaceholder reports whether a policy names PlaceholderAction in
// its action scope or anywhere in its conditions. The placeholder exists
// only to make group policies validate; naming it is always a mistake, so
// policies that do are refused.
func mentionsPlaceholder(p *ast.Policy) bool {
	placeholder := ActionUID(PlaceholderAction)
	switch sc := p.Action.(type) {
	case ast.ScopeTypeEq:
		if sc.Entity == placeholder {
			return true
		}
	case ast.ScopeTypeIn:
		if sc.Entity == placeholder {
			return true
		}
	case ast.ScopeTypeInSet:
		if slices.Contains(sc.Entities, placeholder) {
			return true
		}
	}
	found := false
	for _, c := range p.Conditions {
		ast.Inspect(ast.NewNode(c.Body), func(n ast.IsNode) bool {
			if v, ok := n.(ast.NodeValue); ok && valueMentions(v.Value, placeholder) {
				found = true
			}
			return !found
		})
	}
	return found
}

// valueMentions reports whether a literal value is, or contains, uid.
func valueMentions(v types.Value, uid types.EntityUID) bool {
	switch v := v.(type) {
	case types.EntityUID:
		return v == uid
	case types.Set:
		for e := range v.All() {
			if valueMentions(e, uid) {
				return true
			}
		}
	case types.Record:
		for _, e := range v.All() {
			if valueMentions(e, uid) {
				return true
			}
		}
	}
	return false
}
