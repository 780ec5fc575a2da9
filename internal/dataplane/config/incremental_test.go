package config_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// TestIncrementalCompile compiles random sequences of snapshots twice:
// each version incrementally (config.Reusing the last version that
// compiled, as the data plane does) and from scratch. Both must accept or
// refuse alike, with the same problems, and what they accept must serve
// alike: the same snapshot, tools, pins, API keys, decisions, listings,
// argument validation and rollout counterparts (sameServing).
func TestIncrementalCompile(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			g := newSnapshotWalk(seed)
			var prev *config.Compiled
			accepted := 0
			for step := range 25 {
				what := g.step()
				data := configtest.Marshal(t, g.snap)
				scratch, serr := config.Compile(data)
				inc, ierr := config.Compile(data, config.Reusing(prev))
				if (serr == nil) != (ierr == nil) || serr != nil && serr.Error() != ierr.Error() {
					t.Fatalf("step %d (%s): from scratch: %v; incrementally: %v", step, what, serr, ierr)
				}
				if serr != nil {
					// The data plane keeps serving prev, and the walk
					// goes on from it.
					t.Logf("step %d (%s): refused: %v", step, what, serr)
					g.undo()
					continue
				}
				g.accepted()
				accepted++
				sameServing(t, fmt.Sprintf("step %d (%s)", step, what), scratch, inc, g.keys)
				prev = inc
			}
			if accepted < 10 {
				t.Fatalf("only %d of 25 versions compiled: the walk tests too little", accepted)
			}
		})
	}
}

// snapshotWalk changes a snapshot one resource at a time, at random: the
// kinds of change a control plane sends (agents, keys, pins and their
// versions, value lists, policies, a rollout).
type snapshotWalk struct {
	r    *rand.Rand
	snap *snapshotv1.Snapshot
	// keys are every API key ever issued, by agent, so lookups cover
	// removed agents too.
	keys []string
	next int
	// extra is the source of policy set "extra", one policy a line.
	extra []string
	// good and goodExtra are the last accepted snapshot and its extra.
	good      *snapshotv1.Snapshot
	goodExtra []string
}

// accepted records the snapshot as the last one accepted.
func (g *snapshotWalk) accepted() {
	g.good, g.goodExtra = proto.CloneOf(g.snap), slices.Clone(g.extra)
}

// undo goes back to the last snapshot accepted (a newer version).
func (g *snapshotWalk) undo() {
	if g.good == nil {
		g.good, g.goodExtra = configtest.Snapshot(), nil
	}
	v := g.snap.GetVersion()
	g.snap, g.extra = proto.CloneOf(g.good), slices.Clone(g.goodExtra)
	g.snap.Version = v
}

func newSnapshotWalk(seed uint64) *snapshotWalk {
	g := &snapshotWalk{r: rand.New(rand.NewPCG(seed, 7)), snap: configtest.Snapshot()}
	g.keys = []string{configtest.PayerKey, configtest.MarketerKey, configtest.ExpiredKey, configtest.DisabledKey}
	return g
}

var walkSchemas = []string{
	configtest.PaySchema,
	`{"type": "object", "properties": {"amount": {"type": "integer", "maximum": 1000}}}`,
	`{"type": "object", "properties": {"amount": {"type": "number"}, "memo": {"type": "string", "maxLength": 4}}}`,
	"",
}

// step makes one change and says what it was.
func (g *snapshotWalk) step() string {
	s := g.snap
	s.Version++
	g.next++
	switch g.r.IntN(11) {
	case 0, 1:
		name := fmt.Sprintf("a%d", g.next)
		secret := fmt.Sprintf("pck_%016x_s", 0x100+g.next)
		g.keys = append(g.keys, secret)
		s.Agents = append(s.Agents, &configv1.Agent{
			Meta: &configv1.ResourceMeta{Name: name, Labels: map[string]string{"n": fmt.Sprint(g.r.IntN(3))}},
			Team: []string{"payments", "marketing", ""}[g.r.IntN(3)],
			ApiKeys: []*configv1.ApiKey{{
				Id: fmt.Sprintf("%016x", 0x100+g.next), Sha256: configtest.Hash(secret),
			}},
		})
		return "add agent " + name
	case 2:
		a := s.Agents[g.r.IntN(len(s.Agents))]
		a = proto.CloneOf(a)
		s.Agents = slices.DeleteFunc(s.Agents, func(x *configv1.Agent) bool { return x.GetMeta().GetName() == a.GetMeta().GetName() })
		switch g.r.IntN(3) {
		case 0:
			a.Disabled = !a.Disabled
		case 1:
			a.Team = []string{"payments", "marketing", ""}[g.r.IntN(3)]
		default:
			a.Meta.Owner = fmt.Sprint("o", g.next)
		}
		s.Agents = append(s.Agents, a)
		return "change agent " + a.GetMeta().GetName()
	case 3:
		if len(s.Agents) > 1 {
			i := g.r.IntN(len(s.Agents))
			name := s.Agents[i].GetMeta().GetName()
			s.Agents = slices.Delete(s.Agents, i, i+1)
			return "remove agent " + name
		}
		return "nothing"
	case 4:
		tool := fmt.Sprintf("t%d", g.r.IntN(4))
		i := slices.IndexFunc(s.ToolPins, func(p *configv1.ToolPin) bool { return p.GetTool() == tool })
		schema := []byte(walkSchemas[g.r.IntN(len(walkSchemas))])
		if i < 0 {
			s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
				Meta: &configv1.ResourceMeta{Name: "pay/" + tool}, Upstream: configtest.Upstream, Tool: tool,
				Versions: []*configv1.ToolVersion{{Version: 1, InputSchema: schema, Definition: schema, DefinitionHash: fmt.Sprint("h", g.next), Class: configv1.ToolClass_TOOL_CLASS_MUTATING}},
			})
			return "add pin " + tool
		}
		p := proto.CloneOf(s.ToolPins[i])
		n := int64(len(p.Versions) + 1)
		p.Versions = append(p.Versions, &configv1.ToolVersion{Version: n, InputSchema: schema, Definition: schema, DefinitionHash: fmt.Sprint("h", g.next), Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY})
		p.ActiveVersion = 1 + g.r.Int64N(n)
		if g.r.IntN(2) == 0 {
			p.Assignments = []*configv1.ToolAssignment{{Version: 1, Agent: "payer"}, {Version: n, Team: "marketing"}}
		}
		s.ToolPins[i] = p
		return "new version of pin " + tool
	case 5:
		if i := slices.IndexFunc(s.ToolPins, func(p *configv1.ToolPin) bool { return strings.HasPrefix(p.GetTool(), "t") }); i >= 0 {
			s.ToolPins = slices.Delete(s.ToolPins, i, i+1)
			return "remove a pin" // refused while a policy names it
		}
		return "nothing"
	case 6, 7, 8:
		g.extra = append(g.extra, g.policy())
		g.setExtra()
		return "add a policy"
	case 9:
		if len(g.extra) > 0 {
			i := g.r.IntN(len(g.extra))
			if g.r.IntN(2) == 0 {
				g.extra = slices.Delete(g.extra, i, i+1)
			} else {
				g.extra[i] = g.policy()
			}
			g.setExtra()
			return "remove or change a policy"
		}
		return "nothing"
	default:
		if s.Rollout != nil {
			s.Rollout = nil
			return "end the rollout"
		}
		cand := strings.Join(append(slices.Clone(g.extra), g.policy()), "\n")
		s.Rollout = &snapshotv1.Rollout{
			Id: fmt.Sprint("r", g.next), Stage: configv1.RolloutStage(1 + g.r.IntN(2)), CanaryBasisPoints: 5000,
			Candidate: &configv1.PolicySet{Meta: &configv1.ResourceMeta{Name: "extra"}, Source: cand, Version: int64(g.next)},
		}
		if g.r.IntN(2) == 0 {
			// A list the candidate may refer to.
			s.ValueLists = []*configv1.ValueList{{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{"bob", fmt.Sprint("p", g.next)}}}
		}
		return "start a rollout"
	}
}

// policy is a random policy over the walk's agents and tools (it may
// name a tool or a list that does not exist: such versions are refused).
func (g *snapshotWalk) policy() string {
	actions := []string{configtest.PayAction, configtest.BalanceAction, "pay__t0", "pay__t1", "pay__t2"}
	action := actions[g.r.IntN(len(actions))]
	agent := []string{"payer", "marketer", fmt.Sprintf("a%d", g.r.IntN(g.next+1))}[g.r.IntN(3)]
	switch g.r.IntN(5) {
	case 0:
		return fmt.Sprintf("permit(principal == Agent::%q, action == Action::%q, resource);", agent, action)
	case 1:
		return fmt.Sprintf("permit(principal in Team::\"marketing\", action == Action::%q, resource) when { resource.readOnly || principal.owner == \"bob\" };", action)
	case 2:
		return fmt.Sprintf("forbid(principal, action == Action::%q, resource) when { context.arguments has amount && context.arguments.amount > %d };", action, g.r.IntN(300))
	case 3:
		return fmt.Sprintf("@id(\"p%d\")\npermit(principal == Agent::%q, action in Action::\"call_tool\", resource) when { principal.hasTag(\"n\") && principal.getTag(\"n\") == \"1\" };", g.next, agent)
	default:
		return "forbid(principal, action == Action::\"pay__pay\", resource) when { context.arguments has to && List::\"payees\".values.contains(context.arguments.to) };"
	}
}

// setExtra writes the extra policies into policy set "extra".
func (g *snapshotWalk) setExtra() {
	src := strings.Join(g.extra, "\n")
	s := g.snap
	i := slices.IndexFunc(s.PolicySets, func(ps *configv1.PolicySet) bool { return ps.GetMeta().GetName() == "extra" })
	if i < 0 {
		s.PolicySets = append(s.PolicySets, &configv1.PolicySet{Meta: &configv1.ResourceMeta{Name: "extra"}})
		i = len(s.PolicySets) - 1
	}
	ps := proto.CloneOf(s.PolicySets[i])
	ps.Source, ps.Version = src, ps.Version+1
	s.PolicySets[i] = ps
}

// walkArguments are the arguments every tool is called with.
var walkArguments = []string{`{}`, `{"amount": 100, "to": "bob"}`, `{"amount": 250, "to": "carol", "memo": "abcdef"}`, `{"amount": "x"}`}

// sameServing fails the test unless want and got serve alike.
func sameServing(t *testing.T, what string, want, got *config.Compiled, keys []string) {
	t.Helper()
	ctx := context.Background()
	if !proto.Equal(want.Snapshot(), got.Snapshot()) {
		t.Fatalf("%s: the snapshots differ", what)
	}
	if w, g := toolViews(want.Pins()), toolViews(got.Pins()); !reflect.DeepEqual(w, g) {
		t.Fatalf("%s: pins\nwant %+v\ngot  %+v", what, w, g)
	}
	agents := []*configv1.Agent{nil}
	for _, k := range keys {
		wa, wok := want.AgentByAPIKey(k, callAt)
		ga, gok := got.AgentByAPIKey(k, callAt)
		if wok != gok || wa.GetMeta().GetName() != ga.GetMeta().GetName() {
			t.Fatalf("%s: key %s: want %v %v, got %v %v", what, k, wa.GetMeta().GetName(), wok, ga.GetMeta().GetName(), gok)
		}
	}
	agents = append(agents, want.Snapshot().GetAgents()...)
	actions := []string{"pay__nope"}
	for _, tl := range want.Tools() {
		actions = append(actions, tl.Action)
	}
	for _, a := range agents {
		who := fmt.Sprintf("%s: agent %q", what, a.GetMeta().GetName())
		wl := targetNames(want.Listable(ctx, newCall(want, a, "", ""), pipeline.KindTool))
		gl := targetNames(got.Listable(ctx, newCall(got, a, "", ""), pipeline.KindTool))
		if !slices.Equal(wl, gl) {
			t.Fatalf("%s: listable %v, incrementally %v", who, wl, gl)
		}
		for _, action := range actions {
			wt, wok := want.Tool(action, a)
			gt, gok := got.Tool(action, a)
			if wok != gok || !reflect.DeepEqual(toolView(wt), toolView(gt)) {
				t.Fatalf("%s: tool %s: %+v, incrementally %+v", who, action, toolView(wt), toolView(gt))
			}
			for _, args := range walkArguments {
				wd := want.Authorize(ctx, newCall(want, a, action, args))
				gd := got.Authorize(ctx, newCall(got, a, action, args))
				if !reflect.DeepEqual(wd, gd) {
					t.Fatalf("%s: %s %s: %+v, incrementally %+v", who, action, args, wd, gd)
				}
				if wok {
					v := decodeArguments(args)
					we, ge := problemSet(wt.ValidateArguments(v)), problemSet(gt.ValidateArguments(v))
					if we != ge {
						t.Fatalf("%s: %s validates %s: %s, incrementally %s", who, action, args, we, ge)
					}
				}
				wr, gr := want.Rollout(), got.Rollout()
				if (wr == nil) != (gr == nil) {
					t.Fatalf("%s: rollout %v, incrementally %v", what, wr, gr)
				}
				if wr != nil {
					wd, wok := wr.Counterpart(ctx, newCall(want, a, action, args))
					gd, gok := gr.Counterpart(ctx, newCall(got, a, action, args))
					if wok != gok || !reflect.DeepEqual(wd, gd) {
						t.Fatalf("%s: %s %s: counterpart %+v, incrementally %+v", who, action, args, wd, gd)
					}
				}
			}
		}
	}
}

// toolView is what a pipeline.Tool says, without its validator (a func).
func toolView(t pipeline.Tool) pipeline.Tool {
	t.ValidateArguments = nil
	return t
}

func toolViews(ts []pipeline.Tool) []pipeline.Tool {
	out := make([]pipeline.Tool, len(ts))
	for i, t := range ts {
		out[i] = toolView(t)
	}
	return out
}

func targetNames(ts []pipeline.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = fmt.Sprintf("%s@%d", t.Name, t.Tool.Version)
	}
	return out
}

// decodeArguments decodes a call's arguments as the pipeline does (numbers
// as json.Number).
func decodeArguments(args string) any {
	d := json.NewDecoder(strings.NewReader(args))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		panic(err)
	}
	return v
}

// problemSet is an argument validation error's problems, sorted: the
// validator reports a schema's properties in no fixed order.
func problemSet(err error) string {
	if err == nil {
		return ""
	}
	ps := strings.Split(err.Error(), "; ")
	slices.Sort(ps)
	return strings.Join(ps, "; ")
}
