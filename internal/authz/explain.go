package authz

import (
	"context"
	"fmt"

	"github.com/cedar-policy/cedar-go"

	"github.com/portcullis-gw/portcullis/internal/argjson"
)

// PolicyRef is a policy of the configuration and where it is written.
type PolicyRef struct {
	// ID is the gateway-wide id, "<set>/<id>".
	ID string
	// Effect is "permit" or "forbid".
	Effect string
	// File, Line and Column are where the policy starts in its set's
	// source (Line 0 when unknown).
	File         string
	Line, Column int
}

// String is "<set>/<id> (file:line:col)".
func (p PolicyRef) String() string {
	if p.Line == 0 {
		return p.ID
	}
	return fmt.Sprintf("%s (%s:%d:%d)", p.ID, p.File, p.Line, p.Column)
}

// Policy finds a policy by its gateway-wide id.
func (e *Engine) Policy(id string) (PolicyRef, bool) {
	p := e.policies.Get(cedar.PolicyID(id))
	if p == nil {
		return PolicyRef{}, false
	}
	pos := p.Position()
	effect := "permit"
	if p.Effect() == cedar.Forbid {
		effect = "forbid"
	}
	return PolicyRef{ID: id, Effect: effect, File: pos.Filename, Line: pos.Line, Column: pos.Column}, true
}

// Explanation is a decision with the determining policies located.
type Explanation struct {
	Decision Decision
	// Policies are Decision.Policies with their effect and position, in
	// the same order.
	Policies []PolicyRef
	// Version is the configuration version that decided.
	Version uint64
}

// Explain answers an operator's access question: the decision Decide
// makes for req, with the determining policies located. Unlike Decide it
// refuses questions that name nothing real, so that a typo is never
// reported as a plain deny: an agent that does not exist is an
// [ErrUnknownAgent], a resource that does not exist an
// [ErrUnknownResource], an action that does not apply to the resource or a
// malformed user an [ErrInvalidRequest]. A disabled agent is a deny with
// the reason in Decision.Errors, as a data plane decides it.
func (e *Engine) Explain(ctx context.Context, req *Request) (Explanation, error) {
	if _, ok := e.agents[req.Agent]; !ok {
		return Explanation{}, kindErrorf(ErrUnknownAgent, "no agent %q in configuration version %d", argjson.Truncate(req.Agent, maxNameEcho), e.version)
	}
	if _, err := e.target(req.Action, req.Resource); err != nil {
		return Explanation{}, err
	}
	if err := checkUser(req.User); err != nil {
		return Explanation{}, err
	}
	d := e.Decide(ctx, req)
	out := Explanation{Decision: d, Version: e.version, Policies: make([]PolicyRef, 0, len(d.Policies))}
	for _, id := range d.Policies {
		ref, ok := e.Policy(id)
		if !ok {
			ref = PolicyRef{ID: id}
		}
		out.Policies = append(out.Policies, ref)
	}
	return out, nil
}

// checkUser refuses a user that could not come from a verified token.
func checkUser(u *User) error {
	if u != nil && (u.Source == "" || u.Name == "") {
		return kindErrorf(ErrInvalidRequest, "a user needs an identity source and a name (SOURCE/NAME)")
	}
	return nil
}
