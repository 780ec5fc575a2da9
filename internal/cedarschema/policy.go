package cedarschema

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/portcullis-gw/portcullis/internal/limits"
)

// IDAnnotation is the annotation that names a policy.
const IDAnnotation = "id"

// PolicySet is one parsed and validated policy set.
type PolicySet struct {
	// Policies are in source order.
	Policies []Policy
}

// Policy is one validated policy.
type Policy struct {
	// ID is the gateway-wide id, "<set>/<id>".
	ID string
	// Effect is "permit" or "forbid".
	Effect   string
	Position Position
	Policy   *cedar.Policy
	// Lists are the names of the value lists the policy refers to, sorted
	// (see ListRefs).
	Lists []string
}

// ParsePolicies parses one policy set's source and validates every policy
// strictly against the schema. filename is used in every position. On
// failure the error is an *Error listing every problem found.
func (s *Schema) ParsePolicies(setName, filename string, src []byte) (*PolicySet, error) {
	set, err := parseSet(setName, filename, src, false, nil)
	if err != nil {
		return nil, err
	}
	return s.Validate(set)
}

// ParseSet parses one policy set's source without a schema: what
// validating it against a schema needs, parsed once (see Validate and
// ValidateAffected). filename is used in every position. It fails only on
// an invalid set name; a source that does not parse is an error of every
// validation of the set.
func ParseSet(setName, filename string, src []byte) (*ParsedSet, error) {
	return parseSet(setName, filename, src, true, nil)
}

// parseSet is ParseSet; keep is false for a parse validated once and
// dropped (ParsePolicies), which needs neither the source nor what each
// policy reads of the schema's actions (ValidateAffected). known, when not
// nil, holds policies parsed before, reused by their text (see
// ParsePoliciesKnown).
func parseSet(setName, filename string, src []byte, keep bool, known Known) (*ParsedSet, error) {
	// A set name without '/' keeps "<set>/<id>" unambiguous across sets.
	if setName == "" || strings.Contains(setName, "/") {
		return nil, fmt.Errorf("parse policies in %s: invalid policy set name %q (want non-empty, no '/')", filename, setName)
	}
	set := &ParsedSet{name: setName, filename: filename}
	if keep {
		set.source = string(src)
	}
	// cedar-go's parser, validator and evaluator recurse over brackets
	// and expressions: a source nested beyond the limits never reaches
	// them, whoever calls (the control plane's state machine, a data
	// plane's snapshot compile, gwctl).
	if err := limits.CheckCedar(src); err != nil {
		var le *limits.Error
		errors.As(err, &le)
		set.err = &Error{Diagnostics: []Diagnostic{{
			Position: Position{Filename: filename, Line: le.Line, Column: le.Column},
			Message:  le.Msg,
		}}}
		return set, nil
	}
	list, ok := reuseList(filename, src, known)
	if !ok {
		var err error
		if list, err = cedar.NewPolicyListFromBytes(filename, src); err != nil {
			set.err = &Error{Diagnostics: []Diagnostic{parseDiagnostic(filename, err)}}
			return set, nil
		}
	}
	set.policies = make([]parsedPolicy, 0, len(list))
	seen := make(map[string]Position, len(list))
	for i, p := range list {
		id := policyID(p, i)
		tree := (*ast.Policy)(p.AST())
		pp := parsedPolicy{Policy: Policy{
			ID:       setName + "/" + id,
			Effect:   effectName(p.Effect()),
			Position: position(filename, p.Position()),
			Policy:   p,
			Lists:    ListRefs(tree),
		}}
		if first, dup := seen[pp.ID]; dup {
			pp.static = append(pp.static, Diagnostic{
				Position: pp.Position,
				PolicyID: pp.ID,
				Message:  fmt.Sprintf("duplicate policy id, first used at %s", first),
			})
		} else {
			seen[pp.ID] = pp.Position
		}
		if strings.TrimSpace(id) == "" {
			pp.static = append(pp.static, Diagnostic{Position: pp.Position, PolicyID: pp.ID, Message: "empty @id annotation"})
		}
		if keep {
			pp.actions = actionRefsOf(tree)
		}
		set.policies = append(set.policies, pp)
	}
	return set, nil
}

// Validate validates every policy of set strictly against the schema. On
// failure the error is an *Error listing every problem found.
func (s *Schema) Validate(set *ParsedSet) (*PolicySet, error) {
	return s.validate(set, nil)
}

// validate is Validate; a policy for which valid, when not nil, is true
// was validated clean against this schema before and is not again.
func (s *Schema) validate(set *ParsedSet, valid func(i int) bool) (*PolicySet, error) {
	if set.err != nil {
		return nil, set.err
	}
	var diags []Diagnostic
	out := &PolicySet{Policies: make([]Policy, 0, len(set.policies))}
	for i, p := range set.policies {
		diags = append(diags, p.static...)
		if valid == nil || !valid(i) {
			diags = append(diags, s.validatePolicy(p.Policy)...)
		}
		out.Policies = append(out.Policies, p.Policy)
	}
	if len(diags) > 0 {
		return nil, &Error{Diagnostics: diags}
	}
	return out, nil
}

// validatePolicy runs cedar-go's strict validator on one policy and turns
// each error into a diagnostic at the policy's position. cedar-go does not
// report positions inside a policy.
func (s *Schema) validatePolicy(p Policy) []Diagnostic {
	tree := (*ast.Policy)(p.Policy.AST())
	// A learned list that does not learn: say so instead of the
	// validator's "attribute not found", which is its consequence.
	var unknown []Diagnostic
	for _, name := range LearnedRefs(tree) {
		if !slices.Contains(s.learned, name) {
			unknown = append(unknown, Diagnostic{Position: p.Position, PolicyID: p.ID, Message: fmt.Sprintf(
				"context.learned[%q]: value list %q does not learn; make it learn first (gwctl valuelist learn %s --tool <prefix>__<tool> --argument <name> --scope agent|team|global)", name, name, name)})
		}
	}
	if len(unknown) > 0 {
		return unknown
	}
	var msgs []string
	if err := s.validator.Policy("", tree); err != nil {
		for _, e := range flatten(err) {
			msgs = append(msgs, explain(e.Error()))
		}
	}
	if mentionsPlaceholder(tree) {
		msgs = append(msgs, fmt.Sprintf("action %s is reserved: no request ever uses it", ActionUID(PlaceholderAction)))
	}
	if len(msgs) == 0 {
		return nil
	}
	// The validator visits request environments in map order; sort and
	// de-duplicate so diagnostics are stable, root causes first.
	slices.SortFunc(msgs, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	msgs = slices.Compact(msgs)
	diags := make([]Diagnostic, len(msgs))
	for i, m := range msgs {
		diags[i] = Diagnostic{Position: p.Position, PolicyID: p.ID, Message: m}
	}
	return diags
}

// rank orders validator messages: unknown names first, as they usually
// cause the rest.
func rank(msg string) int {
	if strings.HasPrefix(msg, "unrecognized ") {
		return 0
	}
	return 1
}

// explain adds a hint to validator messages about the placeholder action,
// which users did not write and may not expect.
func explain(msg string) string {
	if strings.Contains(msg, `"`+PlaceholderAction+`"`) {
		return msg + " (a policy over every tool in Action::\"call_tool\" must guard tool arguments with `has`)"
	}
	return msg
}

// flatten unwraps errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// policyID is the @id annotation of p, or policy<index>.
func policyID(p *cedar.Policy, index int) string {
	if id, ok := p.Annotations()[IDAnnotation]; ok {
		return string(id)
	}
	return fmt.Sprintf("policy%d", index)
}

func effectName(e cedar.Effect) string {
	if e == cedar.Permit {
		return "permit"
	}
	return "forbid"
}

func position(filename string, p cedar.Position) Position {
	return Position{Filename: filename, Line: p.Line, Column: p.Column}
}

// asError is errors.As for *Error, used by ValidateAll to merge sets.
func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// PolicyText is one policy of a set's source: its gateway-wide id and its
// canonical Cedar text.
type PolicyText struct {
	ID, Text string
}

// PolicyTexts parses a set's source without a schema and returns each
// policy's gateway-wide id ("<set>/<@id or policyN>") and canonical Cedar
// text, in source order: what comparing two versions of a set by policy
// needs (gwctl policy diff).
func PolicyTexts(setName, filename string, src []byte) ([]PolicyText, error) {
	if err := limits.CheckCedar(src); err != nil {
		return nil, err
	}
	list, err := cedar.NewPolicyListFromBytes(filename, src)
	if err != nil {
		return nil, err
	}
	out := make([]PolicyText, 0, len(list))
	for i, p := range list {
		out = append(out, PolicyText{ID: setName + "/" + policyID(p, i), Text: string(p.MarshalCedar())})
	}
	return out, nil
}
