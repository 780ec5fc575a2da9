package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// compilePolicies parses and strictly validates every policy set against
// the generated schema and combines them into one Cedar policy set whose
// policy ids are the gateway-wide "<set>/<id>".
func (b *builder) compilePolicies() {
	sets := slices.Clone(b.snap.GetPolicySets())
	slices.SortStableFunc(sets, func(x, y *configv1.PolicySet) int {
		return strings.Compare(x.GetMeta().GetName(), y.GetMeta().GetName())
	})
	combined := cedar.NewPolicySet()
	b.src.sets = make(map[string]compiledSet, len(sets))
	for i, ps := range sets {
		name := ps.GetMeta().GetName()
		if i > 0 && sets[i-1].GetMeta().GetName() == name {
			b.problem("policy set %q appears twice", name)
			continue
		}
		filename := ps.GetFilename()
		if filename == "" {
			filename = name + ".cedar"
		}
		parsed, err := b.parseSet(name, filename, ps.GetSource())
		if err != nil {
			b.policyProblems(name, err)
			continue
		}
		b.src.sets[name] = compiledSet{filename: filename, source: ps.GetSource(), parsed: parsed}
		for _, p := range parsed.Policies {
			// The control plane refuses such a policy; checked again
			// because Cedar would skip it on every call, and a skipped
			// forbid permits what it should deny.
			for _, l := range p.Lists {
				if _, ok := b.lists[l]; !ok {
					b.problem("policy set %q: policy %s refers to value list %q, which is missing from the snapshot", name, p.ID, l)
				}
			}
			combined.Add(cedar.PolicyID(p.ID), p.Policy)
		}
	}
	b.e.policies = combined
}

// parseSet parses and validates one policy set against the schema: the
// previous version's parse when the schema and the set are unchanged,
// else a parse that validates only the policies the previous version did
// not (see WithPrevious).
func (b *builder) parseSet(name, filename, source string) (*cedarschema.PolicySet, error) {
	if p := b.prevSources(); p != nil && b.schemaReused {
		if old, ok := p.sets[name]; ok && old.filename == filename && old.source == source {
			return old.parsed, nil
		}
	}
	return b.e.schema.ParsePoliciesKnown(name, filename, []byte(source), b.knownPolicies())
}

// policyProblems records each diagnostic of a refused set as a problem of
// its own ("file:line:col: policy <id>: message").
func (b *builder) policyProblems(set string, err error) {
	var cerr *cedarschema.Error
	if !errors.As(err, &cerr) {
		b.problem("policy set %q: %v", set, err)
		return
	}
	for _, d := range cerr.Diagnostics {
		b.problem("policy set %q: %s", set, d)
	}
}

// policyError renders a Cedar evaluation error for Decision.Errors.
func policyError(id cedar.PolicyID, msg string) string {
	return fmt.Sprintf("policy %s: %s", id, msg)
}
