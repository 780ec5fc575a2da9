package cedarschema

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// ListUID is the entity a policy names to read the value list called name.
func ListUID(name string) types.EntityUID {
	return types.NewEntityUID(TypeList, types.String(name))
}

// ListRefs returns the names of the value lists a policy refers to
// (List::"<name>" anywhere in it), sorted and without repeats.
//
// Cedar skips a policy whose evaluation errors, and reading an attribute of
// a missing entity is such an error: a forbid that names a missing list
// would silently stop applying. The control plane therefore refuses a
// policy set that refers to a list that does not exist, and the data plane
// refuses a snapshot with such a reference.
func ListRefs(p *ast.Policy) []string {
	var names []string
	eachEntityLiteral(p, func(uid types.EntityUID) bool {
		if uid.Type == TypeList {
			names = append(names, string(uid.ID))
		}
		return true
	})
	slices.Sort(names)
	return slices.Compact(names)
}

// Lists returns the names of the value lists any policy of the set refers
// to, sorted and without repeats.
func (ps *PolicySet) Lists() []string {
	var names []string
	for _, p := range ps.Policies {
		names = append(names, p.Lists...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// LearnedRefs returns the names of the learned lists a policy reads
// (context.learned.<name> or context.learned["<name>"], also under `has`),
// sorted and without repeats.
func LearnedRefs(p *ast.Policy) []string {
	var names []string
	for _, c := range p.Conditions {
		ast.Inspect(ast.NewNode(c.Body), func(n ast.IsNode) bool {
			var arg ast.IsNode
			var attr types.String
			switch v := n.(type) {
			case ast.NodeTypeAccess:
				arg, attr = v.Arg, v.Value
			case ast.NodeTypeHas:
				arg, attr = v.Arg, v.Value
			default:
				return true
			}
			if inner, ok := arg.(ast.NodeTypeAccess); ok && inner.Value == ContextLearned {
				if ctx, ok := inner.Arg.(ast.NodeTypeVariable); ok && ctx.Name == "context" {
					names = append(names, string(attr))
				}
			}
			return true
		})
	}
	slices.Sort(names)
	return slices.Compact(names)
}
