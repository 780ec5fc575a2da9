package stages

import (
	"context"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// ContentGate admits an MCP resources/read or prompts/get call (its
// upstream in c.Tool.Upstream): the configuration must be fresh enough,
// and the agent must be granted the upstream's content, which follows
// from its tools (see pipeline.ContentAuthorizer). Reading content is
// read-only, so it is served in degraded mode and while frozen. It takes
// Gate's and Authorize's place in the content chain, after Audit and
// Authenticate.
type ContentGate struct{}

var _ pipeline.Stage = ContentGate{}

// Name implements pipeline.Stage.
func (ContentGate) Name() string { return "content_gate" }

// Handle implements pipeline.Stage.
func (ContentGate) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if err := serving(c); err != nil {
		return nil, err
	}
	ca, ok := c.Config.(pipeline.ContentAuthorizer)
	granted := ok && slices.ContainsFunc(ca.ContentUpstreams(ctx, c), func(u pipeline.ContentUpstream) bool {
		return u.Name == c.Tool.Upstream
	})
	if !granted {
		return nil, pipeline.Refuse(pipeline.ReasonDenied,
			"no policy permits this agent any tool of upstream %q, so its resources and prompts are not available either", truncate(c.Tool.Upstream, maxEcho))
	}
	c.Decision = pipeline.Decision{Allowed: true}
	return next(ctx, c)
}
