package stages

import (
	"context"
	"fmt"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// maxErrorsShown bounds the evaluation errors named in a denial.
const maxErrorsShown = 2

// Authorize decides the operation:
//
//   - a session request (initialize, discover, ping, …) of an identified
//     agent is allowed: it reaches no upstream on the caller's behalf.
//     When it names a target kind (a handshake that describes what the
//     caller may use, as MCP's initialize does), call.Visible becomes the
//     targets of that kind the caller may use, as for a list;
//   - a list: call.Visible becomes the targets of the listed kind the
//     policies could permit the agent some call of (the configuration's
//     Listable, by partial evaluation) that Gate's Admit also admits;
//   - anything else: the configuration's decision, recorded in
//     call.Decision; a denied operation is refused, naming the policies
//     that determined the denial.
type Authorize struct{}

var _ pipeline.Stage = Authorize{}

// Name implements pipeline.Stage.
func (Authorize) Name() string { return "authorize" }

// Handle implements pipeline.Stage.
func (Authorize) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Config == nil {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	}
	switch {
	case c.Op == pipeline.OpSession && c.Target.Kind == "":
		c.Decision = pipeline.Decision{Allowed: true}
		return next(ctx, c)
	case c.Op == pipeline.OpList || c.Op == pipeline.OpSession:
		listable := c.Config.Listable(ctx, c, c.Target.Kind)
		refreshQuarantine(ctx, c, listable)
		var visible []pipeline.Target
		for _, t := range listable {
			if Admit(ctx, c, t) == nil {
				visible = append(visible, t)
			}
		}
		c.Visible = visible
		c.Decision = pipeline.Decision{Allowed: true}
		return next(ctx, c)
	}
	d := c.Config.Authorize(ctx, c)
	c.Decision = d
	if d.Allowed {
		return next(ctx, c)
	}
	if d.InvalidArguments {
		// The arguments do not fit the pinned schema, so no policy could
		// judge them: say so as the spec's input-validation failure.
		msg := "the arguments do not match the tool's pinned input schema"
		if len(d.Errors) > 0 {
			msg += ": " + truncate(d.Errors[0], maxDetail)
		}
		return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "%s", msg)
	}
	return nil, pipeline.Refuse(pipeline.ReasonDenied, "%s", denial(c, d))
}

// denial words a deny decision: the determining policies, or default deny,
// and the first evaluation errors (which name field paths and policy ids,
// not values).
func denial(c *pipeline.Call, d pipeline.Decision) string {
	var b strings.Builder
	switch {
	case len(d.Policies) > 0:
		fmt.Fprintf(&b, "denied by policy %s", strings.Join(d.Policies, ", "))
	case c.Target.Kind == pipeline.KindResource || c.Target.Kind == pipeline.KindPrompt:
		fmt.Fprintf(&b, "no policy permits this agent any tool of upstream %q, so its resources and prompts are not available either",
			truncate(c.Target.Upstream, maxEcho))
	case c.Target.Kind == pipeline.KindAgent:
		b.WriteString("no policy permits this operation on this remote agent (default deny)")
	default:
		b.WriteString("no policy permits this call (default deny)")
	}
	for i, e := range d.Errors {
		if i == maxErrorsShown {
			fmt.Fprintf(&b, "; and %d more errors", len(d.Errors)-i)
			break
		}
		b.WriteString("; error: ")
		b.WriteString(truncate(e, maxDetail/maxErrorsShown))
	}
	return b.String()
}

// refreshQuarantine re-checks the upstreams of the listed pinned targets
// (tools, a remote agent's skills) for drift when their last check is not
// recent (the Quarantine bounds the wait), so that what an upstream
// changed is hidden within one list.
func refreshQuarantine(ctx context.Context, c *pipeline.Call, targets []pipeline.Target) {
	if c.Quarantine == nil {
		return
	}
	var upstreams []string
	seen := map[string]bool{}
	for _, t := range targets {
		if t.Tool.DefinitionHash != "" && !seen[t.Upstream] {
			seen[t.Upstream] = true
			upstreams = append(upstreams, t.Upstream)
		}
	}
	if len(upstreams) > 0 {
		c.Quarantine.Refresh(ctx, upstreams)
	}
}
