package cedarschema

import (
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// mentionsPlaceholder reports whether a policy names PlaceholderAction in
// its scope or anywhere in its conditions. The placeholder exists only to
// make group policies validate; naming it is always a mistake, so policies
// that do are refused.
func mentionsPlaceholder(p *ast.Policy) bool {
	placeholder := ActionUID(PlaceholderAction)
	found := false
	eachEntityLiteral(p, func(uid types.EntityUID) bool {
		found = uid == placeholder
		return !found
	})
	return found
}

// eachEntityLiteral calls fn with every entity literal a policy names: in
// its principal, action and resource scopes and anywhere in its conditions,
// including inside set and record literals. It stops when fn returns false.
func eachEntityLiteral(p *ast.Policy, fn func(types.EntityUID) bool) {
	more := true
	visit := func(uid types.EntityUID) {
		if more {
			more = fn(uid)
		}
	}
	for _, sc := range []ast.IsScopeNode{p.Principal, p.Action, p.Resource} {
		switch sc := sc.(type) {
		case ast.ScopeTypeEq:
			visit(sc.Entity)
		case ast.ScopeTypeIn:
			visit(sc.Entity)
		case ast.ScopeTypeIsIn:
			visit(sc.Entity)
		case ast.ScopeTypeInSet:
			for _, e := range sc.Entities {
				visit(e)
			}
		}
	}
	for _, c := range p.Conditions {
		ast.Inspect(ast.NewNode(c.Body), func(n ast.IsNode) bool {
			if v, ok := n.(ast.NodeValue); ok {
				eachValueEntity(v.Value, visit)
			}
			return more
		})
	}
}

// eachValueEntity calls visit with every entity in a literal value: the
// value itself, or the members of a set or record, at any depth.
func eachValueEntity(v types.Value, visit func(types.EntityUID)) {
	switch v := v.(type) {
	case types.EntityUID:
		visit(v)
	case types.Set:
		for e := range v.All() {
			eachValueEntity(e, visit)
		}
	case types.Record:
		for _, e := range v.All() {
			eachValueEntity(e, visit)
		}
	}
}
