package cedarschema

import (
	"bytes"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Recompiling a changed policy set. Parsing and validating every policy
// of a large set costs far more than the one policy an operator changed,
// and a policy's parse depends only on its own text, its validation only
// on its text and the schema. A caller that keeps the sets it compiled
// against a schema hands their policies to ParsePoliciesKnown, which
// parses and validates only the policies whose text is new.

// Known looks up a policy by its source text (see EachPolicyText): a
// policy parsed from exactly that text and validated clean against the
// schema ParsePoliciesKnown is called on, or false.
type Known func(text []byte) (*cedar.Policy, bool)

// ParsePoliciesKnown is ParsePolicies, except that a policy whose text
// known has is neither parsed nor validated again: its parse is reused,
// moved to its position in src. The result — policies, ids, positions,
// value list references, diagnostics — is ParsePolicies' (tested by
// TestParsePoliciesKnown). A source the quick split below cannot cut into
// policies exactly as the parser would is parsed as a whole.
func (s *Schema) ParsePoliciesKnown(setName, filename string, src []byte, known Known) (*PolicySet, error) {
	if known == nil {
		return s.ParsePolicies(setName, filename, src)
	}
	set, err := parseSet(setName, filename, src, false, known)
	if err != nil {
		return nil, err
	}
	return s.validate(set, func(i int) bool {
		text := policyText(src, set.policies, i)
		if len(text) == 0 {
			return false
		}
		_, ok := known(text)
		return ok
	})
}

// reuseList is src parsed into policies, reusing known ones and parsing
// each new policy's text on its own; false when src does not split into
// policies (see splitPolicies) or a new text is not exactly one policy, so
// the caller parses src as a whole and reports what is wrong as it does.
func reuseList(filename string, src []byte, known Known) (cedar.PolicyList, bool) {
	if known == nil {
		return nil, false
	}
	starts, ok := splitPolicies(src)
	if !ok {
		return nil, false
	}
	list := make(cedar.PolicyList, 0, len(starts))
	line, col, at := 1, 1, 0 // the position of src[at]
	for i, start := range starts {
		for _, r := range string(src[at:start]) {
			if r == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		at = start
		pos := ast.Position{Filename: filename, Offset: start, Line: line, Column: col}
		end := len(src)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		text := src[start:end]
		if p, ok := known(text); ok {
			list = append(list, moved(p, pos))
			continue
		}
		parsed, err := cedar.NewPolicyListFromBytes(filename, text)
		if err != nil || len(parsed) != 1 || parsed[0].Position().Offset != 0 {
			return nil, false
		}
		// The policy is this call's own: setting where it is in src does
		// not touch anything shared (the position plays no part in
		// evaluation).
		parsed[0].AST().Position = pos
		list = append(list, parsed[0])
	}
	return list, true
}

// moved is p at pos: p itself when it is there already, else a new policy
// of the same tree (shared, immutable) at pos.
func moved(p *cedar.Policy, pos ast.Position) *cedar.Policy {
	if ast.Position(p.Position()) == pos {
		return p
	}
	tree := *p.AST()
	tree.Position = pos
	return cedar.NewPolicyFromAST(&tree)
}

// splitPolicies returns where each policy of src starts — its first
// token, after blank space and comments — as cedar-go's scanner reads
// src: a policy ends at a ';' outside string literals and comments, and
// nothing but blank space and comments follows the last one. False when
// src may not scan that way (a byte-order mark or NUL, which the scanner
// treats specially; an unterminated literal or comment; text after the
// last ';'): the caller then parses src as a whole.
func splitPolicies(src []byte) ([]int, bool) {
	if bytes.ContainsRune(src, '\uFEFF') || bytes.IndexByte(src, 0) >= 0 || !utf8.Valid(src) {
		return nil, false
	}
	var starts []int
	inPolicy := false
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				return nil, false
			}
			i += 2 + end + 2
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r': // the scanner's blank space
			i++
			continue
		}
		if !inPolicy {
			starts = append(starts, i)
			inPolicy = true
		}
		switch c {
		case '"':
			i++
			for i < len(src) && src[i] != '"' {
				if src[i] == '\n' {
					return nil, false
				}
				if src[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(src) {
				return nil, false
			}
		case ';':
			inPolicy = false
		}
		i++
	}
	return starts, !inPolicy
}

// EachPolicyText calls fn with each policy of set and its source text,
// which src (the source set was parsed from) holds: from the policy's
// first annotation, or its effect, up to where the next policy starts (or
// the end of src), comments and blank space after the policy included.
// Equal texts are equal policies, whatever precedes them in the source.
func EachPolicyText(src string, set *PolicySet, fn func(text string, p *cedar.Policy)) {
	for i, p := range set.Policies {
		start := p.Policy.Position().Offset
		end := len(src)
		if i+1 < len(set.Policies) {
			end = set.Policies[i+1].Policy.Position().Offset
		}
		if start < 0 || start > end || end > len(src) {
			continue // not parsed from src: known to nothing
		}
		fn(src[start:end], p.Policy)
	}
}

// policyText is the source text of policy i of policies, parsed from src
// (see EachPolicyText); nil when it was not parsed from src.
func policyText(src []byte, policies []parsedPolicy, i int) []byte {
	start := policies[i].Policy.Policy.Position().Offset
	end := len(src)
	if i+1 < len(policies) {
		end = policies[i+1].Policy.Policy.Position().Offset
	}
	if start < 0 || start > end || end > len(src) {
		return nil
	}
	return src[start:end]
}
