package authz

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// contextReads is what a group of policies reads from a request's context,
// found by walking their conditions: a decision of those policies depends
// on the principal, action and resource (fixed per agent and action in one
// version) and on nothing else but these.
//
// Entities that are not part of the request, such as value lists
// (List::"<name>".values), are part of the version too: they come from the
// snapshot, and the decision cache belongs to one compiled version, so a
// changed list arrives as a new version with an empty cache. What a policy
// compares a list with (context.arguments.to in
// `List::"x".values.contains(context.arguments.to)`) is found by this walk
// like any other context read.
type contextReads struct {
	// uncacheable is set when a policy reads context.time, the context as
	// a whole, or anything the walk does not understand.
	uncacheable bool
	flags       readFlags
	// args are the paths under context.arguments read, sorted and unique;
	// wholeArguments in flags covers them all.
	args [][]types.String
}

type readFlags uint16

const (
	readUser readFlags = 1 << iota
	readSourceIP
	readDegraded
	readProtocol
	readWholeArguments
	// readWholeContext: the context used as a whole.
	readWholeContext
	readSkill
	readMessageBytes
	readMetadataBytes
	readFindings
)

// readsOf walks a policy's conditions for context accesses.
func readsOf(p *ast.Policy) contextReads {
	r := walkReads(p)
	r.finish()
	return r
}

// walkReads is readsOf without finish: the argument paths are kept even
// when the policy is uncacheable.
func walkReads(p *ast.Policy) contextReads {
	var r contextReads
	for _, c := range p.Conditions {
		ast.Inspect(ast.NewNode(c.Body), func(n ast.IsNode) bool {
			switch n := n.(type) {
			case ast.NodeTypeAccess:
				return !r.addChain(n)
			case ast.NodeTypeHas:
				return !r.addChain(n)
			case ast.NodeTypeVariable:
				if n.Name == "context" {
					// The context used whole, e.g. compared to a record.
					r.uncacheable = true
					r.flags |= readWholeContext
				}
			}
			return true
		})
	}
	return r
}

// addChain records an attribute chain (`.a.b` accesses, optionally ending
// in `has c`) rooted at `context` and reports whether it was one; for any
// other chain the walk continues into its operand.
func (r *contextReads) addChain(n ast.IsNode) bool {
	var path []types.String
	for {
		switch v := n.(type) {
		case ast.NodeTypeAccess:
			path = append(path, v.Value)
			n = v.Arg
			continue
		case ast.NodeTypeHas:
			path = append(path, v.Value)
			n = v.Arg
			continue
		case ast.NodeTypeVariable:
			if v.Name != "context" {
				return false
			}
		default:
			return false
		}
		break
	}
	slices.Reverse(path)
	switch path[0] {
	case cedarschema.ContextArguments:
		if len(path) == 1 {
			r.flags |= readWholeArguments
		} else {
			r.args = append(r.args, path[1:])
		}
	case cedarschema.ContextUser:
		r.flags |= readUser
	case cedarschema.ContextSourceIP:
		r.flags |= readSourceIP
	case cedarschema.ContextDegraded:
		r.flags |= readDegraded
	case cedarschema.ContextProtocol:
		r.flags |= readProtocol
	case cedarschema.ContextLearned:
		// The caller's learned sets are fixed for the agent in one
		// version, and the key holds the agent: nothing to add.
	case cedarschema.ContextSkill:
		r.flags |= readSkill
	case cedarschema.ContextMessageBytes:
		r.flags |= readMessageBytes
	case cedarschema.ContextMetadataBytes:
		r.flags |= readMetadataBytes
	case cedarschema.ContextFindings:
		r.flags |= readFindings
	default: // context.time, or an attribute the gateway does not know
		r.uncacheable = true
	}
	return true
}

func (r *contextReads) merge(o contextReads) {
	r.uncacheable = r.uncacheable || o.uncacheable
	r.flags |= o.flags
	r.args = append(r.args, o.args...)
}

// finish sorts and deduplicates args, dropping them all when the whole
// arguments record is read.
func (r *contextReads) finish() {
	if r.flags&readWholeArguments != 0 || r.uncacheable {
		r.args = nil
		return
	}
	slices.SortFunc(r.args, slices.Compare)
	r.args = slices.CompactFunc(r.args, slices.Equal)
}
