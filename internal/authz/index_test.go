package authz_test

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// Random-world parameters of the differential test.
const (
	diffTools  = 6
	diffAgents = 8
	diffTeams  = 3
	diffGroups = 3
)

// diffArgsSchema types every test tool's arguments: all optional, so
// policies over the whole call_tool group may guard them with has.
const diffArgsSchema = `{
	"type": "object",
	"properties": {
		"amount": {"type": "integer"},
		"to":     {"type": "string"},
		"urgent": {"type": "boolean"},
		"price":  {"type": "number"},
		"tags":   {"type": "array", "items": {"type": "string"}},
		"meta":   {"type": "object", "properties": {"level": {"type": "integer"}}}
	}
}`

func diffAction(i int) string { return fmt.Sprintf("%s__t%d", authztest.Upstream, i) }
func diffAgent(i int) string  { return fmt.Sprintf("a%d", i) }

// diffSnapshot is the fixture with diffTools tools sharing diffArgsSchema,
// diffAgents agents in diffTeams teams (the last without a team, one
// disabled) and the given policy sets.
func diffSnapshot(sets ...string) *snapshotv1.Snapshot {
	s := authztest.Snapshot()
	s.ToolPins = nil
	for i := range diffTools {
		class := configv1.ToolClass_TOOL_CLASS_MUTATING
		if i%2 == 0 {
			class = configv1.ToolClass_TOOL_CLASS_READ_ONLY
		}
		s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
			Meta:     &configv1.ResourceMeta{Name: fmt.Sprintf("pay/t%d", i)},
			Upstream: authztest.Upstream,
			Tool:     fmt.Sprintf("t%d", i),
			Versions: []*configv1.ToolVersion{{Version: 1, InputSchema: []byte(diffArgsSchema), Class: class}},
		})
	}
	s.Agents = nil
	for i := range diffAgents {
		a := &configv1.Agent{Meta: &configv1.ResourceMeta{Name: diffAgent(i), Labels: map[string]string{"env": []string{"prod", "dev"}[i%2]}}}
		if i < diffAgents-1 {
			a.Team = fmt.Sprintf("team%d", i%diffTeams)
		}
		a.Disabled = i == 3
		s.Agents = append(s.Agents, a)
	}
	s.PolicySets = nil
	for i, src := range sets {
		s.PolicySets = append(s.PolicySets, &configv1.PolicySet{Meta: &configv1.ResourceMeta{Name: fmt.Sprintf("set%d", i)}, Source: src, Version: 1})
	}
	return s
}

// randomPolicy draws one policy from templates mixing scopes, effects and
// conditions (including ones that error at evaluation).
func randomPolicy(r *rand.Rand, allowTime bool) string {
	effect := []string{"permit", "forbid"}[r.Intn(2)]
	principals := []string{
		"principal",
		fmt.Sprintf(`principal == Agent::"%s"`, diffAgent(r.Intn(diffAgents+1))), // one past: an unknown agent
		fmt.Sprintf(`principal in Team::"team%d"`, r.Intn(diffTeams+1)),
		"principal is Agent",
		fmt.Sprintf(`principal is Agent in Team::"team%d"`, r.Intn(diffTeams)),
		fmt.Sprintf(`principal in Agent::"%s"`, diffAgent(r.Intn(diffAgents))),
	}
	actions := []string{
		"action",
		fmt.Sprintf(`action == Action::"%s"`, diffAction(r.Intn(diffTools))),
		fmt.Sprintf(`action in [Action::"%s", Action::"%s"]`, diffAction(r.Intn(diffTools)), diffAction(r.Intn(diffTools))),
		`action in Action::"call_tool"`,
		fmt.Sprintf(`action in Action::"%s"`, diffAction(r.Intn(diffTools))),
		fmt.Sprintf(`action in [Action::"%s", Action::"call_tool"]`, diffAction(r.Intn(diffTools))),
	}
	resources := []string{
		"resource",
		fmt.Sprintf(`resource == Tool::"%s"`, diffAction(r.Intn(diffTools))),
		fmt.Sprintf(`resource in Upstream::"%s"`, authztest.Upstream),
	}
	conds := []string{
		fmt.Sprintf(`context.arguments has amount && context.arguments.amount > %d`, r.Intn(200)),
		fmt.Sprintf(`context.arguments has to && context.arguments.to == "%s"`, []string{"bob", "eve"}[r.Intn(2)]),
		`context.arguments has urgent && context.arguments.urgent`,
		`context.arguments has price && context.arguments.price.greaterThan(decimal("1.5"))`,
		`context.arguments has tags && context.arguments.tags.contains("x")`,
		`context.arguments has meta && context.arguments.meta has level && context.arguments.meta.level >= 2`,
		// Overflows for amount >= 2: an evaluation error.
		`context.arguments has amount && context.arguments.amount * 4611686018427387904 > 0`,
		fmt.Sprintf(`context has user && context.user in Group::"g%d"`, r.Intn(diffGroups)),
		`context has user && context.user.name == "alice"`,
		`context.degraded`,
		`context.sourceIp.isInRange(ip("10.0.0.0/8"))`,
		`context.protocol == "mcp"`,
		`principal.hasTag("env") && principal.getTag("env") == "prod"`,
		`resource.readOnly`,
	}
	if allowTime {
		conds = append(conds, `context.time.toTime() < duration("12h45m")`)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%s, %s, %s)", effect, principals[r.Intn(len(principals))], actions[r.Intn(len(actions))], resources[r.Intn(len(resources))])
	for range r.Intn(3) {
		kw := []string{"when", "unless"}[r.Intn(2)]
		fmt.Fprintf(&b, " %s { %s }", kw, conds[r.Intn(len(conds))])
	}
	b.WriteString(";\n")
	return b.String()
}

// randomCall draws a call by one of the agents (possibly disabled) on one
// of the tools with random arguments, user, mode, address and time.
func randomCall(r *rand.Rand, agents []*configv1.Agent) *authz.Request {
	var args []string
	if r.Intn(4) > 0 {
		args = append(args, fmt.Sprintf(`"amount": %d`, []int{0, 1, 2, 50, 150}[r.Intn(5)]))
	}
	if r.Intn(2) == 0 {
		args = append(args, fmt.Sprintf(`"to": "%s"`, []string{"bob", "eve"}[r.Intn(2)]))
	}
	if r.Intn(2) == 0 {
		args = append(args, fmt.Sprintf(`"urgent": %v`, r.Intn(2) == 0))
	}
	if r.Intn(3) == 0 {
		args = append(args, fmt.Sprintf(`"price": %s`, []string{"1", "1.5", "1.50", "2.25"}[r.Intn(4)]))
	}
	if r.Intn(3) == 0 {
		args = append(args, []string{`"tags": []`, `"tags": ["x"]`, `"tags": ["y", "x"]`}[r.Intn(3)])
	}
	if r.Intn(3) == 0 {
		args = append(args, []string{`"meta": {}`, `"meta": {"level": 1}`, `"meta": {"level": 3}`}[r.Intn(3)])
	}
	if r.Intn(20) == 0 {
		args = append(args, `"amount": "not a number"`) // a duplicate key or a wrong type: refused
	}
	call := newRequest(agents[r.Intn(len(agents))].GetMeta().GetName(), diffAction(r.Intn(diffTools)), "{"+strings.Join(args, ", ")+"}")
	if r.Intn(2) == 0 {
		u := &authz.User{Source: "corp-idp", Name: []string{"alice", "carol"}[r.Intn(2)]}
		for g := range diffGroups {
			if r.Intn(2) == 0 {
				u.Groups = append(u.Groups, fmt.Sprintf("g%d", g))
			}
		}
		call.User = u
	}
	if r.Intn(3) == 0 {
		call.Context.Degraded = true
	}
	if r.Intn(2) == 0 {
		call.Context.SourceIP = netip.MustParseAddr("192.168.1.1")
	}
	if r.Intn(2) == 0 {
		call.Context.Protocol = "a2a"
	}
	call.Context.Time = callAt.Add(time.Duration(r.Intn(60)) * time.Minute)
	return call
}

// TestAuthorizeIndexMatchesFullEvaluation checks, over random policy sets
// and requests, that Authorize — with the policy index, with and without
// the decision cache — decides exactly as evaluating every policy does:
// same decision, same determining policies, same errors.
func TestDecideIndexMatchesFullEvaluation(t *testing.T) {
	r := rand.New(rand.NewSource(20260126)) //nolint:gosec // a fixed seed keeps failures reproducible
	const worlds, callsPerWorld = 150, 150
	// What the calls exercised, so the test cannot pass vacuously.
	var allowed, forbidden, evalErrors, refused, cachedHits, partialListings int
	for w := range worlds {
		var sets []string
		for range 1 + r.Intn(2) {
			var src strings.Builder
			for range 1 + r.Intn(15) {
				src.WriteString(randomPolicy(r, w%3 == 0))
			}
			sets = append(sets, src.String())
		}
		snap := diffSnapshot(sets...)
		plain, err := authz.Compile(snap, authz.WithDecisionCache(0))
		if err != nil {
			t.Fatalf("world %d: Compile: %v\n%s", w, err, strings.Join(sets, "\n"))
		}
		cached, err := authz.Compile(snap, authz.WithDecisionCache(64))
		if err != nil {
			t.Fatalf("world %d: Compile: %v", w, err)
		}
		// Repeat calls so the cache is hit.
		var calls []*authz.Request
		for range callsPerWorld {
			if len(calls) > 0 && r.Intn(3) == 0 {
				calls = append(calls, calls[r.Intn(len(calls))])
				continue
			}
			calls = append(calls, randomCall(r, snap.Agents))
		}
		for i, call := range calls {
			want := plain.DecideUnindexed(call)
			switch {
			case len(want.Errors) == 1 && len(want.Policies) == 0 && !strings.HasPrefix(want.Errors[0], "policy "):
				refused++
			case want.Allowed:
				allowed++
			case len(want.Policies) > 0:
				forbidden++
			}
			if len(want.Errors) > 0 && strings.HasPrefix(want.Errors[0], "policy ") {
				evalErrors++
			}
			if i%10 == 0 {
				got, want := plain.Listable(context.Background(), call, authz.ResourceTool), plain.ListableUnindexed(context.Background(), call, authz.ResourceTool)
				if !slices.Equal(got, want) {
					t.Fatalf("world %d call %d: Listable = %v, full evaluation %v", w, i, got, want)
				}
				if len(want) > 0 && len(want) < diffTools {
					partialListings++
				}
			}
			before := cached.CachedDecisions()
			for name, e := range map[string]*authz.Engine{"indexed": plain, "cached": cached} {
				got := e.Decide(context.Background(), call)
				if got.Allowed != want.Allowed || !slices.Equal(got.Policies, want.Policies) || !slices.Equal(got.Errors, want.Errors) {
					t.Fatalf("world %d call %d (%s): got %+v, want %+v\npolicies:\n%s\ncall: agent %s action %s args %s user %+v degraded %v ip %v",
						w, i, name, got, want, strings.Join(sets, "\n"), call.Agent, call.Action, call.Arguments, call.User, call.Context.Degraded, call.Context.SourceIP)
				}
			}
			if cached.CachedDecisions() == before && len(want.Policies)+len(want.Errors) > 0 {
				cachedHits++ // or uncacheable; either way not a fresh entry
			}
		}
	}
	t.Logf("allowed %d, forbidden %d, with evaluation errors %d, refused requests %d, cache hits or uncacheable %d, partial tool listings %d",
		allowed, forbidden, evalErrors, refused, cachedHits, partialListings)
	for name, n := range map[string]int{"allowed": allowed, "forbidden": forbidden, "evaluation errors": evalErrors, "refused": refused, "cache hits": cachedHits, "partial listing": partialListings} {
		if n < 50 {
			t.Errorf("only %d %s decisions: the random worlds are too narrow", n, name)
		}
	}
}
