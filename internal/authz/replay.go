package authz

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// This file answers what deciding a recorded call again needs (the
// control plane's replay of audit records): which parts of a call the
// policies that can apply to it read, the decision with values a record
// no longer holds left out, and every policy whose conditions hold.

// ContextUse is what the policies that can apply to one agent calling one
// action read of a call beyond who, what and which.
type ContextUse struct {
	// Arguments are the attribute paths read under context.arguments
	// ("card", "number" for context.arguments.card.number), sorted.
	Arguments [][]string
	// AllArguments: the arguments record (or the whole context) is read
	// as a whole.
	AllArguments bool
	// User: context.user is read (its identity, groups or email).
	User bool
}

// Reads reports what the policies that can apply to agent calling action
// read (see ContextUse). An agent or action the configuration does not
// have reads nothing: such a call is not decided by policies at all.
func (e *Engine) Reads(agent, action string) ContextUse {
	set := e.index.applicable(cedarschema.ActionUID(action), types.String(agent))
	var r contextReads
	for _, p := range set.All() {
		r.merge(walkReads((*ast.Policy)(p.AST())))
	}
	out := ContextUse{
		AllArguments: r.flags&(readWholeArguments|readWholeContext) != 0,
		User:         r.flags&(readUser|readWholeContext) != 0,
	}
	seen := map[string]bool{}
	for _, p := range r.args {
		path := make([]string, len(p))
		for i, s := range p {
			path[i] = string(s)
		}
		key := fmt.Sprintf("%q", path)
		if !seen[key] {
			seen[key] = true
			out.Arguments = append(out.Arguments, path)
		}
	}
	slices.SortFunc(out.Arguments, slices.Compare)
	return out
}

// Matched decides req like Decide and lists every policy whose scope and
// conditions hold for it, sorted: the determining ones and those a
// decision of the other effect overrode. A request Decide refuses to
// build matches nothing.
func (e *Engine) Matched(ctx context.Context, req *Request) (Decision, []string) {
	d := e.Decide(ctx, req)
	if len(d.Policies) == 0 {
		// Default deny, or a request that could not be built: no policy
		// held (a satisfied permit would have allowed).
		return d, nil
	}
	matched := slices.Clone(d.Policies)
	if !d.Allowed {
		// The satisfied forbids decided; satisfied permits are not among
		// the reasons, so ask for them alone.
		creq, err := e.request(req)
		if err == nil {
			set := e.index.applicable(creq.Action, creq.Principal.ID)
			permits := effectOnly{set: &set, effect: cedar.Permit}
			var entities types.EntityGetter = e.entities
			if req.User != nil {
				entities = overlay{base: e.entities, extra: userEntity(req.User)}
			}
			if dec, diag := cedar.Authorize(permits, entities, creq); dec == cedar.Allow {
				for _, r := range diag.Reasons {
					matched = append(matched, string(r.PolicyID))
				}
			}
		}
	}
	slices.Sort(matched)
	return d, slices.Compact(matched)
}

// effectOnly iterates the policies of one effect of a request's buckets.
type effectOnly struct {
	set    *applicable
	effect cedar.Effect
}

func (f effectOnly) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for id, p := range f.set.All() {
			if p.Effect() == f.effect && !yield(id, p) {
				return
			}
		}
	}
}

// PolicyIDs lists every policy id of the version, sorted.
func (e *Engine) PolicyIDs() []string {
	var ids []string
	for id := range e.policies.All() {
		ids = append(ids, string(id))
	}
	slices.Sort(ids)
	return ids
}

// errUnknownType is a placeholder for a type arguments never have.
var errUnknownType = errors.New("no placeholder for this type")

// zeroValue is the placeholder of a Cedar type: the empty string, false,
// 0, 0.0, the empty set, or a record of its required attributes' zero
// values. Decide puts it where Request.Placeholders says the recorded
// value is unknown, so that the call converts and the policies, which do
// not read it, decide as they did.
func zeroValue(t resolved.IsType) (types.Value, error) {
	switch t := t.(type) {
	case resolved.StringType:
		return types.String(""), nil
	case resolved.BoolType:
		return types.False, nil
	case resolved.LongType:
		return types.Long(0), nil
	case resolved.ExtensionType:
		if t == "decimal" {
			return types.NewDecimal(0, 0)
		}
	case resolved.SetType:
		return types.NewSet(), nil
	case resolved.RecordType:
		out := types.RecordMap{}
		for name, attr := range t {
			if attr.Optional {
				continue
			}
			v, err := zeroValue(attr.Type)
			if err != nil {
				return nil, err
			}
			out[name] = v
		}
		return types.NewRecord(out), nil
	}
	return nil, errUnknownType
}
