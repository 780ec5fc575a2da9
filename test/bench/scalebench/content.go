package main

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// size is the configuration the benchmark loads.
type size struct {
	agents, tools, policies int
}

// upstream is the one upstream every tool is pinned on; its tools' actions
// are "up__tool-<i>".
const upstream = "up"

// commands returns the commands that add the configuration to a state, as
// the admin API would write them (one resource per command), by actor at
// now: one MCP upstream; the tool pins, each a definition with an input
// schema hashed as PinTool hashes it; the agents, each with one API key;
// and one policy set in which policy i permits agent i on tool i mod tools,
// with every 20th policy a forbid on an argument condition instead. The
// pins come before the policies, so the policies are validated once,
// against the final Cedar schema.
func commands(sz size, actor *configv1.Actor, now time.Time) (*commandSet, error) {
	cs := &commandSet{}
	cmds := &cs.tools
	add := func(c *fsmv1.Command) {
		c.Actor = actor
		c.Time = timestamppb.New(now)
		*cmds = append(*cmds, c)
	}
	add(statetest.Create(&configv1.Upstream{
		Meta:     &configv1.ResourceMeta{Name: upstream},
		Protocol: configv1.Protocol_PROTOCOL_MCP,
		Url:      "http://127.0.0.1:9/mcp",
	}))
	for i := range sz.tools {
		pin, err := toolPin(i, now)
		if err != nil {
			return nil, err
		}
		add(statetest.Create(pin))
	}
	cmds = &cs.agents
	for i := range sz.agents {
		key := fmt.Sprintf("%016x", i) // the id format of credential.APIKey
		sum := sha256.Sum256([]byte("pck_" + key))
		add(statetest.Create(&configv1.Agent{
			Meta:    &configv1.ResourceMeta{Name: fmt.Sprintf("agent-%d", i)},
			Team:    fmt.Sprintf("team-%d", i%10),
			ApiKeys: []*configv1.ApiKey{{Id: key, Sha256: sum[:], CreateTime: timestamppb.New(now)}},
		}))
	}
	cmds = &cs.policies
	add(statetest.Create(&configv1.PolicySet{
		Meta:   &configv1.ResourceMeta{Name: "scale"},
		Source: policySource(sz),
	}))
	// One write of each kind more, to time on the loaded state.
	cmds = &cs.extra
	add(statetest.Create(&configv1.Agent{Meta: &configv1.ResourceMeta{Name: "agent-extra"}, Team: "team-0"}))
	pin, err := toolPin(sz.tools, now)
	if err != nil {
		return nil, err
	}
	add(statetest.Create(pin))
	return cs, nil
}

// commandSet is the configuration as commands, in groups applied in this
// order: the upstream and the tool pins, the agents, the policy set. Extra
// holds one more agent and one more pin, which are timed on the loaded
// state but never applied to it.
type commandSet struct {
	tools, agents, policies []*fsmv1.Command
	extra                   []*fsmv1.Command
}

func (cs *commandSet) count() int { return len(cs.tools) + len(cs.agents) + len(cs.policies) }

// loadCost is what applying a commandSet cost the state machine.
type loadCost struct {
	tools, agents, policies time.Duration // each group, applied in order
	// oneAgent and onePin are one more write of each kind on the loaded
	// state (the median of three), what every replica's apply loop pays
	// per such write at this scale.
	oneAgent, onePin time.Duration
}

// load applies cs to s as the state machine would and times it.
func load(s *state.State, cs *commandSet) (*state.State, loadCost, error) {
	var lc loadCost
	var err error
	for _, g := range []struct {
		cmds []*fsmv1.Command
		took *time.Duration
	}{{cs.tools, &lc.tools}, {cs.agents, &lc.agents}, {cs.policies, &lc.policies}} {
		start := time.Now()
		if s, err = apply(s, g.cmds); err != nil {
			return nil, lc, err
		}
		*g.took = time.Since(start)
	}
	for i, took := range []*time.Duration{&lc.oneAgent, &lc.onePin} {
		var d timings
		for range 3 {
			start := time.Now()
			if _, err := apply(s, cs.extra[i:i+1]); err != nil {
				return nil, lc, err
			}
			d = append(d, time.Since(start))
		}
		*took = d.median()
	}
	return s, lc, nil
}

func toolPin(i int, now time.Time) (*configv1.ToolPin, error) {
	name := fmt.Sprintf("tool-%d", i)
	def := fmt.Appendf(nil, `{"name":%q,"description":"tool %d of the scale benchmark","inputSchema":{"type":"object","properties":{"amount":{"type":"integer"},"to":{"type":"string"},"memo":{"type":"string","maxLength":200}},"required":["amount"]}}`, name, i)
	hash, schema, err := toolpin.Hash(def)
	if err != nil {
		return nil, fmt.Errorf("hash tool %d: %w", i, err)
	}
	return &configv1.ToolPin{
		Meta:          &configv1.ResourceMeta{Name: resource.ToolPinName(upstream, name)},
		Upstream:      upstream,
		Tool:          name,
		ActiveVersion: 1,
		Versions: []*configv1.ToolVersion{{
			Version: 1, DefinitionHash: hash, Definition: def, InputSchema: schema,
			Class: configv1.ToolClass_TOOL_CLASS_MUTATING, ApproveTime: timestamppb.New(now), ApprovedBy: "scalebench",
		}},
	}, nil
}

func policySource(sz size) string {
	var src strings.Builder
	for i := range sz.policies {
		tool := i % sz.tools
		if i%20 == 0 {
			fmt.Fprintf(&src, "forbid(principal, action == Action::\"%s__tool-%d\", resource) when { context.arguments.amount > %d };\n", upstream, tool, 1000+i)
			continue
		}
		fmt.Fprintf(&src, "permit(principal == Agent::\"agent-%d\", action == Action::\"%s__tool-%d\", resource);\n", i%sz.agents, upstream, tool)
	}
	return src.String()
}

// apply applies cmds to s at the indexes after s's and returns the new
// state; any refusal is an error.
func apply(s *state.State, cmds []*fsmv1.Command) (*state.State, error) {
	for _, c := range cmds {
		var res *fsmv1.Result
		s, res = state.Apply(s, s.Index()+1, c)
		if e := res.GetError(); e != nil {
			return nil, fmt.Errorf("command %s at index %d refused: %s: %s", c.GetMethod(), s.Index(), e.GetCode(), e.GetMessage())
		}
	}
	return s, nil
}
