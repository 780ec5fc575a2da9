package stages

import (
	"context"
	"fmt"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// maxErrorsShown bounds the evaluation errors named in a denial.
const maxErrorsShown = 2

// Authorize asks the configuration for a decision, records it in
// call.Decision and refuses a denied call, naming the policies that
// determined the denial.
type Authorize struct{}

var _ pipeline.Stage = Authorize{}

// Name implements pipeline.Stage.
func (Authorize) Name() string { return "authorize" }

// Handle implements pipeline.Stage.
func (Authorize) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Config == nil {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
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
	return nil, pipeline.Refuse(pipeline.ReasonDenied, "%s", denial(d))
}

// denial words a deny decision: the determining policies, or default deny,
// and the first evaluation errors (which name field paths and policy ids,
// not values).
func denial(d pipeline.Decision) string {
	var b strings.Builder
	if len(d.Policies) > 0 {
		fmt.Fprintf(&b, "denied by policy %s", strings.Join(d.Policies, ", "))
	} else {
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
