package stages

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Gate applies the data plane's mode and the emergency brake before any
// policy is evaluated, and resolves and admits the call's target:
//
//   - a call its endpoint already refused (Call.Refused) is refused with
//     that refusal;
//   - starting (no configuration): every operation is refused (no_config);
//   - stale: every operation is refused (stale);
//   - a tool call: a name no pinned tool has is unknown_tool; the tool is
//     resolved into call.Target (upstream, own name, and the version of
//     the pin the calling agent is served) and admitted by Admit;
//   - a model call: the adapter routed it to its upstream (a name no
//     model has is unknown_model); a completion changes nothing outside
//     the gateway, so it is served degraded and frozen alike (budgets
//     bound what it may spend);
//   - content (read, get, complete, subscribe of a resource or prompt):
//     the adapter routed it to an upstream; reading content is read-only,
//     so it is served degraded and frozen alike;
//   - any operation on a remote agent: a name no pinned agent card has is
//     unknown_tool; the agent is resolved into call.Target (upstream, pin)
//     and admitted by Admit;
//   - lists and session requests pass; Authorize applies Admit to each
//     listed target, so a list never shows what a call would be refused.
type Gate struct{}

var _ pipeline.Stage = Gate{}

// Name implements pipeline.Stage.
func (Gate) Name() string { return "gate" }

// Handle implements pipeline.Stage.
func (Gate) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Refused != nil {
		// The endpoint refused the request already (a transport rule).
		return nil, c.Refused
	}
	if err := serving(c); err != nil {
		return nil, err
	}
	switch {
	case c.Op == pipeline.OpList || c.Op == pipeline.OpSession:
	case c.Target.Kind == pipeline.KindTool && c.Op == pipeline.OpCall:
		tool, ok := c.Config.Tool(c.Target.Name, c.Agent)
		if !ok {
			return nil, pipeline.Refuse(pipeline.ReasonUnknownTool,
				"no tool %q is served by this gateway; list the tools to see which are", truncate(c.Target.Name, maxEcho))
		}
		// The agent-visible name is the pin's action name; the upstream's
		// own name goes beside it.
		c.Target.Tool, c.Target.Name, c.Target.Upstream, c.Target.Own = tool, tool.Action, tool.Upstream, tool.Name
		if r := Admit(ctx, c, c.Target); r != nil {
			return nil, r
		}
	case c.Target.Kind == pipeline.KindAgent:
		agent, ok := c.Config.Agent(c.Target.Name)
		if !ok {
			return nil, pipeline.Refuse(pipeline.ReasonUnknownTool,
				"no remote agent %q is served by this gateway; an operator must register it and approve its agent card", truncate(c.Target.Name, maxEcho))
		}
		c.Target.Tool, c.Target.Upstream = agent, agent.Upstream
		if r := Admit(ctx, c, c.Target); r != nil {
			return nil, r
		}
	case c.Target.Kind == pipeline.KindModel && c.Op == pipeline.OpCall:
		// The adapter routed the model by its name. A model call changes
		// nothing outside the gateway, so it is served degraded and frozen
		// alike; what it may spend is the Limit stage's to decide.
		if c.Target.Upstream == "" {
			return nil, pipeline.Refuse(pipeline.ReasonUnknownModel,
				"no model %q is served by this gateway; list the models to see which are", truncate(c.Target.Name, maxEcho))
		}
	case (c.Target.Kind == pipeline.KindResource || c.Target.Kind == pipeline.KindPrompt) && c.Op.ReadOnly():
		if c.Target.Upstream == "" {
			return nil, pipeline.Refuse(pipeline.ReasonUnknownTool, "no upstream serves %q", truncate(c.Target.Name, maxEcho))
		}
	default:
		// An operation this gateway has no rule for: fail closed.
		return nil, pipeline.Refuse(pipeline.ReasonInternal, msgInternal)
	}
	return next(ctx, c)
}

// Admit applies the per-target rules of the mode and the brake to t, for
// the operation of c on it or for listing it; nil admits it:
//
//   - a tool version deprecated and past its sunset, by this data plane's
//     clock (so a degraded data plane keeps enforcing it): retired, with
//     the version callers should move to;
//   - a pinned target (a tool, a remote agent and its skills) whose
//     upstream definition drifted from every approved version of the pin
//     (see pipeline.Quarantine): quarantined, until an operator approves
//     it; a tool version not compatible with the approved definition the
//     upstream serves: refused to its callers (incompatible);
//   - degraded: only operations that cannot change anything are served —
//     those that are read-only by nature, and calls of tools and agents
//     the operator classified read-only;
//   - frozen by an operator: the same.
//
// Listing a callable target (a tool, a skill) is judged as calling it, so
// a list never shows what a call would be refused. Content targets
// (resources, prompts) are read-only and always admitted.
func Admit(ctx context.Context, c *pipeline.Call, t pipeline.Target) *pipeline.Refusal {
	if t.Kind != pipeline.KindTool && t.Kind != pipeline.KindAgent && t.Kind != pipeline.KindSkill {
		return nil
	}
	if d := t.Tool.Deprecation; d.Retired(startOf(c)) {
		return retired(t.Tool, d)
	}
	if c.Quarantine != nil {
		if r := c.Quarantine.Check(ctx, t.Tool); r != nil {
			return pipeline.Refuse(r.Reason, "%s", truncate(r.Message, maxDetail))
		}
	}
	if !changes(c.Op, t) || t.Tool.ReadOnly() {
		return nil
	}
	what := "tools"
	if t.Kind != pipeline.KindTool {
		what = "tools and remote agents, and reads of tasks,"
	}
	if c.Mode == configsyncv1.Mode_MODE_DEGRADED {
		return pipeline.Refuse(pipeline.ReasonDegraded,
			"the control plane is unreachable; only read-only %s are served; retry later", what)
	}
	if frozen, reason := c.Config.Frozen(); frozen {
		if reason == "" {
			reason = "no reason given"
		}
		return pipeline.Refuse(pipeline.ReasonFrozen,
			"an operator froze the gateway (%s); only read-only %s are served until the freeze is lifted", truncate(reason, maxDetail), what)
	}
	return nil
}

// changes reports whether op on t may change the world when t is not
// read-only: a call or a cancel may; listing a callable target (a tool, a
// skill) stands for calling it; every other operation only reads.
func changes(op pipeline.Operation, t pipeline.Target) bool {
	if op == pipeline.OpList {
		return t.Kind == pipeline.KindTool || t.Kind == pipeline.KindSkill && t.Name != ""
	}
	return !op.ReadOnly()
}

// serving refuses an operation the data plane cannot serve in its mode at
// all: no configuration yet (starting), or one older than --max-stale.
// Normal and degraded modes serve (what degraded allows is Admit's rule).
func serving(c *pipeline.Call) error {
	switch c.Mode {
	case configsyncv1.Mode_MODE_STARTING:
		return pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	case configsyncv1.Mode_MODE_STALE:
		return pipeline.Refuse(pipeline.ReasonStale, msgStale)
	case configsyncv1.Mode_MODE_NORMAL, configsyncv1.Mode_MODE_DEGRADED:
	default:
		// An adapter that did not set the mode: fail closed.
		return pipeline.Refuse(pipeline.ReasonInternal, msgInternal)
	}
	if c.Config == nil {
		return pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	}
	return nil
}

// retired is the refusal of a call on a tool version past its sunset: it
// names the sunset, the operator's message and the version to move to.
func retired(t pipeline.Tool, d *pipeline.Deprecation) *pipeline.Refusal {
	msg := fmt.Sprintf("version %d of tool %s was retired at %s", t.Version, t.Action, d.Sunset.UTC().Format(time.RFC3339))
	if d.Message != "" {
		msg += " (" + truncate(d.Message, maxDetail) + ")"
	}
	if d.Replacement != 0 {
		msg += fmt.Sprintf("; version %d replaces it: ask an operator to move you to it (gwctl tool assign --upstream %s --tool %s --version %d)",
			d.Replacement, t.Upstream, t.Name, d.Replacement)
	} else {
		msg += "; no version replaces it: ask an operator"
	}
	return pipeline.Refuse(pipeline.ReasonToolVersionRetired, "%s", msg)
}
