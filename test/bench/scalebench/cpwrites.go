package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Issue 14's goals for the state machine at the scale fixture: what every
// replica's serial apply loop pays for one more write.
const (
	goalAgentWrite = time.Millisecond
	goalPinWrite   = 50 * time.Millisecond
)

// writeRuns is how many times each write is timed; the report gives the
// median.
const writeRuns = 7

// cpWrites is what one more write of each kind costs state.Apply on the
// loaded state. Every write is applied to the same loaded state, so each
// run measures the same change, not a growing state.
type cpWrites struct {
	// agent creates an agent with a new API key: its identifiers are
	// checked unique against every agent's.
	agent timings
	// pinChange approves a new version of a pinned tool with a different
	// input schema (a new optional argument), as gwctl tool pin does after
	// drift: the schema of that tool's action changes and the policies
	// that name it are re-validated. Each run changes another tool.
	pinChange timings
	// pinCold is the same write on the state as a snapshot restore or a
	// node's start reads it (state.Read), before any pin write warmed the
	// state machine's derived caches: one run.
	pinCold time.Duration
}

// measureWrites times one more agent and one schema-changing pin write on
// s, the loaded state, writeRuns times each, by actor at now.
func measureWrites(s *state.State, sz size, actor *configv1.Actor, now time.Time) (cpWrites, error) {
	var m cpWrites
	for i := range writeRuns {
		key := fmt.Sprintf("%016x", sz.agents+1+i)
		c := statetest.Create(&configv1.Agent{
			Meta:    &configv1.ResourceMeta{Name: fmt.Sprintf("agent-more-%d", i)},
			Team:    "team-0",
			ApiKeys: []*configv1.ApiKey{{Id: key, Sha256: make([]byte, 32), CreateTime: timestamppb.New(now)}},
		})
		d, err := timeWrite(s, c, actor, now)
		if err != nil {
			return m, err
		}
		m.agent = append(m.agent, d)
	}
	for i := range writeRuns {
		// Tools 1, 2, …: each is named by the policies i ≡ tool (mod
		// tools), so sz.policies/sz.tools of them.
		c, err := pinChange(s, (i+1)%sz.tools, now)
		if err != nil {
			return m, err
		}
		d, err := timeWrite(s, c, actor, now)
		if err != nil {
			return m, err
		}
		m.pinChange = append(m.pinChange, d)
	}
	var snap bytes.Buffer
	if _, err := s.WriteTo(&snap); err != nil {
		return m, fmt.Errorf("write the loaded state: %w", err)
	}
	cold, err := state.Read(&snap)
	if err != nil {
		return m, fmt.Errorf("read the loaded state back: %w", err)
	}
	c, err := pinChange(cold, 0, now)
	if err != nil {
		return m, err
	}
	if m.pinCold, err = timeWrite(cold, c, actor, now); err != nil {
		return m, err
	}
	return m, nil
}

// timeWrite applies c to s by actor at now and returns how long
// state.Apply took; a refusal is an error.
func timeWrite(s *state.State, c *fsmv1.Command, actor *configv1.Actor, now time.Time) (time.Duration, error) {
	c.Actor = actor
	c.Time = timestamppb.New(now)
	start := time.Now()
	_, res := state.Apply(s, s.Index()+1, c)
	took := time.Since(start)
	if e := res.GetError(); e != nil {
		return 0, fmt.Errorf("command %s refused: %s: %s", c.GetMethod(), e.GetCode(), e.GetMessage())
	}
	return took, nil
}

// pinChange returns the update of tool's pin in s that approves a second
// version with another input schema and makes it the default.
func pinChange(s *state.State, tool int, now time.Time) (*fsmv1.Command, error) {
	name := fmt.Sprintf("tool-%d", tool)
	cur, ok := s.Get(resource.ToolPin, resource.ToolPinName(upstream, name))
	if !ok {
		return nil, fmt.Errorf("tool %s is not pinned", name)
	}
	pin := proto.Clone(cur.GetToolPin()).(*configv1.ToolPin)
	def := fmt.Appendf(nil, `{"name":%q,"description":"tool %d of the scale benchmark, version 2","inputSchema":{"type":"object","properties":{"amount":{"type":"integer"},"to":{"type":"string"},"memo":{"type":"string","maxLength":200},"note":{"type":"string"}},"required":["amount"]}}`, name, tool)
	hash, schema, err := toolpin.Hash(def)
	if err != nil {
		return nil, fmt.Errorf("hash tool %d: %w", tool, err)
	}
	pin.Versions = append(pin.Versions, &configv1.ToolVersion{
		Version: 2, DefinitionHash: hash, Definition: def, InputSchema: schema,
		Class: configv1.ToolClass_TOOL_CLASS_MUTATING, ApproveTime: timestamppb.New(now), ApprovedBy: "scalebench",
	})
	pin.ActiveVersion = 2
	return statetest.Update(pin), nil
}

// verdict says whether took meets goal.
func verdict(took, goal time.Duration) string {
	if took <= goal {
		return "PASS"
	}
	return "FAIL"
}

// renderWrites is the report's section on one more write.
func renderWrites(b *strings.Builder, sz size, lc loadCost, w cpWrites) {
	fmt.Fprintf(b, "\nState machine, one more write on the loaded state (`state.Apply`, the median of %d, each applied to the same loaded state; every replica's serial apply loop pays it):\n\n", writeRuns)
	fmt.Fprintf(b, "| write | min | median | max | goal | |\n|---|---:|---:|---:|---:|---|\n")
	fmt.Fprintf(b, "| one more agent write (a new agent, one new API key) | %s | %s | %s | ≤ %s | **%s** |\n",
		dur(w.agent.min()), dur(w.agent.median()), dur(w.agent.max()), dur(goalAgentWrite), verdict(w.agent.median(), goalAgentWrite))
	fmt.Fprintf(b, "| one schema-changing pin write (a new version of a tool named by %d policies) | %s | %s | %s | ≤ %s | **%s** |\n",
		sz.policies/sz.tools, dur(w.pinChange.min()), dur(w.pinChange.median()), dur(w.pinChange.max()), dur(goalPinWrite), verdict(w.pinChange.median(), goalPinWrite))
	fmt.Fprintf(b, "| … the same on a state just read from a snapshot (one run; derived caches cold) | %s | | | | |\n", dur(w.pinCold))
	fmt.Fprintf(b, "\nBulk load, one command at a time: upstream and %d pins %s, %d agents %s (%s per agent), the policy set %s.\n",
		sz.tools, dur(lc.tools), sz.agents, dur(lc.agents), dur(lc.agents/time.Duration(max(sz.agents, 1))), dur(lc.policies))
}
