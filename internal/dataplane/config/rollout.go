package config

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/canary"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// This file compiles the policy rollout a snapshot stages: a second
// engine, of the snapshot with the candidate in place of its policy set,
// and the agents in the canary. Authorize decides with the candidate for
// an agent in the canary; the rollout stage asks for the other decision
// (Counterpart). A snapshot whose candidate does not compile is refused
// like one whose policies do not: the control plane validated both.

// rollout is a compiled policy rollout; it implements pipeline.Rollout.
type rollout struct {
	id    string
	stage string
	bp    uint32
	// active and candidate decide without and with the candidate.
	active, candidate *authz.Engine
	// inCanary is every enabled agent the candidate decides for.
	inCanary map[string]bool
	// versions are the sets' "<set>@<version>" with the candidate's (see
	// setVersions).
	versions map[string][]string
}

var _ pipeline.Rollout = (*rollout)(nil)

func (r *rollout) ID() string                { return r.id }
func (r *rollout) Stage() string             { return r.stage }
func (r *rollout) CanaryBasisPoints() uint32 { return r.bp }

// Counterpart implements pipeline.Rollout.
func (r *rollout) Counterpart(ctx context.Context, c *pipeline.Call) (pipeline.Decision, bool) {
	if c.Agent == nil || c.Op != pipeline.OpCall || c.Target.Kind != pipeline.KindTool {
		return pipeline.Decision{}, false
	}
	switch {
	case r.stage == "shadow":
		return r.decide(ctx, r.candidate, c, true), true
	case r.inCanary[c.Agent.GetMeta().GetName()]:
		return r.decide(ctx, r.active, c, false), true
	}
	return pipeline.Decision{}, false
}

func (r *rollout) decide(ctx context.Context, e *authz.Engine, c *pipeline.Call, candidate bool) pipeline.Decision {
	req := request(c)
	d := e.Decide(ctx, &req)
	vs := r.versions
	if !candidate {
		vs = nil
	}
	return decision(d, candidate, vs)
}

// Rollout returns the policy rollout the version stages, nil when none.
func (c *Compiled) Rollout() pipeline.Rollout {
	if c.rollout == nil {
		return nil
	}
	return c.rollout
}

// engineFor is the engine that decides for agent: the candidate for an
// agent in the canary, else the active one.
func (c *Compiled) engineFor(agent string) (*authz.Engine, bool) {
	if r := c.rollout; r != nil && r.stage == "canary" && r.inCanary[agent] {
		return r.candidate, true
	}
	return c.engine, false
}

// decision turns an engine's decision into the pipeline's, naming the
// versions of the sets whose policies determined it (from versions when
// the candidate decided; nil: the active ones). Versions, like the lists
// in versions, is never modified: when one set decided, it is that set's
// list itself.
func decision(d authz.Decision, candidate bool, versions map[string][]string) pipeline.Decision {
	out := pipeline.Decision{Allowed: d.Allowed, Policies: d.Policies, Errors: d.Errors, InvalidArguments: d.InvalidArguments, Candidate: candidate}
	if len(d.Policies) == 0 || versions == nil {
		return out
	}
	for _, id := range d.Policies {
		set, _, _ := strings.Cut(id, "/")
		v, ok := versions[set]
		switch {
		case !ok || slices.Contains(out.Versions, v[0]):
		case out.Versions == nil:
			out.Versions = v // a set's own list: appending to it copies it
		default:
			out.Versions = append(out.Versions, v[0])
		}
	}
	slices.Sort(out.Versions)
	return out
}

// setVersions maps each policy set's name to the list of its
// "<set>@<version>" alone, which decisions share: its length and capacity
// are 1, so appending to it copies it.
func setVersions(sets []*configv1.PolicySet) map[string][]string {
	out := make(map[string][]string, len(sets))
	for _, ps := range sets {
		out[ps.GetMeta().GetName()] = []string{fmt.Sprintf("%s@%d", ps.GetMeta().GetName(), ps.GetVersion())}
	}
	return out
}

// compileRollout compiles the snapshot's rollout, if it stages one.
func (b *builder) compileRollout(o options) {
	ro := b.snap.GetRollout()
	if ro == nil {
		return
	}
	name := truncate(ro.GetId(), maxSegmentBytes)
	var stage string
	switch ro.GetStage() {
	case configv1.RolloutStage_ROLLOUT_STAGE_SHADOW:
		stage = "shadow"
	case configv1.RolloutStage_ROLLOUT_STAGE_CANARY:
		stage = "canary"
	default:
		b.problems.add("rollout %q: stage %v is not one a data plane serves", name, ro.GetStage())
		return
	}
	cand := ro.GetCandidate()
	set := cand.GetMeta().GetName()
	if ro.GetId() == "" || set == "" {
		b.problems.add("rollout %q: no id, or a candidate without a policy set name", name)
		return
	}
	snap := &snapshotv1.Snapshot{
		Version: b.snap.GetVersion(), Agents: b.snap.GetAgents(), Upstreams: b.snap.GetUpstreams(),
		ToolPins: b.snap.GetToolPins(), ValueLists: b.snap.GetValueLists(),
	}
	replaced := false
	for _, ps := range b.snap.GetPolicySets() {
		if ps.GetMeta().GetName() == set {
			ps, replaced = cand, true
		}
		snap.PolicySets = append(snap.PolicySets, ps)
	}
	if !replaced {
		snap.PolicySets = append(snap.PolicySets, cand)
	}
	// The pins were vetted by the active compile: a snapshot with a pin
	// that fails is refused anyway.
	prev := b.c.engine // same pins: its schema, its policies but one set
	if old := b.prev.candidateEngine(); old != nil {
		prev = old
	}
	e, err := authz.Compile(snap, authz.WithDecisionCache(o.cacheSize), authz.WithPrevious(prev))
	if err != nil {
		var aerr *authz.Error
		if !errors.As(err, &aerr) {
			b.problems.add("rollout %q: candidate: %v", name, err)
			return
		}
		for _, p := range aerr.Problems {
			b.problems.add("rollout %q: candidate: %s", name, p)
		}
		return
	}
	r := &rollout{
		id: ro.GetId(), stage: stage, bp: ro.GetCanaryBasisPoints(),
		active: b.c.engine, candidate: e, inCanary: map[string]bool{},
		versions: setVersions(snap.GetPolicySets()),
	}
	if stage == "shadow" {
		r.bp = 0
	} else {
		for _, a := range b.snap.GetAgents() {
			if n := a.GetMeta().GetName(); !a.GetDisabled() && canary.In(r.id, n, r.bp) {
				r.inCanary[n] = true
			}
		}
	}
	b.c.rollout = r
}
