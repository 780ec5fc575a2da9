package stages

import (
	"context"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Gate applies the data plane's mode and the emergency brake before any
// policy is evaluated, and resolves the called tool into call.Tool:
//
//   - starting (no configuration): every call is refused (no_config);
//   - stale: every call is refused (stale);
//   - an action no pinned tool has: unknown_tool;
//   - a tool whose upstream definition drifted from the pin (see
//     pipeline.Quarantine): quarantined, until an operator approves it;
//   - degraded: only tools the operator classified read-only are served;
//   - frozen by an operator: only read-only tools are served.
type Gate struct{}

var _ pipeline.Stage = Gate{}

// Name implements pipeline.Stage.
func (Gate) Name() string { return "gate" }

// Handle implements pipeline.Stage.
func (Gate) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if err := serving(c); err != nil {
		return nil, err
	}
	tool, ok := c.Config.Tool(c.Action)
	if !ok {
		return nil, pipeline.Refuse(pipeline.ReasonUnknownTool,
			"no tool %q is served by this gateway; list the tools to see which are", truncate(c.Action, maxEcho))
	}
	c.Tool = tool
	if c.Quarantine != nil {
		if msg, q := c.Quarantine.Quarantined(ctx, tool); q {
			return nil, pipeline.Refuse(pipeline.ReasonQuarantined, "%s", truncate(msg, maxDetail))
		}
	}
	if c.Mode == configsyncv1.Mode_MODE_DEGRADED && !tool.ReadOnly() {
		return nil, pipeline.Refuse(pipeline.ReasonDegraded,
			"the control plane is unreachable; only read-only tools are served; retry later")
	}
	if frozen, reason := c.Config.Frozen(); frozen && !tool.ReadOnly() {
		if reason == "" {
			reason = "no reason given"
		}
		return nil, pipeline.Refuse(pipeline.ReasonFrozen,
			"an operator froze the gateway (%s); only read-only tools are served until the freeze is lifted", truncate(reason, maxDetail))
	}
	return next(ctx, c)
}

// serving refuses a call the data plane cannot serve in its mode at all:
// no configuration yet (starting), or one older than --max-stale. Normal
// and degraded modes serve (what degraded allows is each stage's rule).
func serving(c *pipeline.Call) error {
	switch c.Mode {
	case configsyncv1.Mode_MODE_STARTING:
		return pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	case configsyncv1.Mode_MODE_STALE:
		return pipeline.Refuse(pipeline.ReasonStale, msgStale)
	case configsyncv1.Mode_MODE_NORMAL, configsyncv1.Mode_MODE_DEGRADED:
	default:
		// An adapter that did not set the mode: fail closed.
		return pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
	}
	if c.Config == nil {
		return pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	}
	return nil
}
