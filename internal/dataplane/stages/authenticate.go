package stages

import (
	"context"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Authenticate resolves the caller's API key to an agent and sets
// call.Agent. An unknown, malformed or expired key, or a disabled agent, is
// refused as unauthenticated. Expiry is judged at the call's start.
type Authenticate struct{}

var _ pipeline.Stage = Authenticate{}

// Name implements pipeline.Stage.
func (Authenticate) Name() string { return "authenticate" }

// Handle implements pipeline.Stage.
func (Authenticate) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Config == nil {
		// Without configuration no key can be checked; saying
		// "unauthenticated" would send the caller after the wrong problem.
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	}
	now := c.Start
	if now.IsZero() {
		now = time.Now()
	}
	if c.Credential == "" {
		return nil, unauthenticated()
	}
	agent, ok := c.Config.AgentByAPIKey(c.Credential, now)
	if !ok || agent == nil {
		return nil, unauthenticated()
	}
	c.Agent = agent
	return next(ctx, c)
}

func unauthenticated() *pipeline.Refusal {
	return pipeline.Refuse(pipeline.ReasonUnauthenticated, "a valid API key is required: send Authorization: Bearer pck_…")
}
