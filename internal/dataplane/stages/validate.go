package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Validate checks a tool call's arguments against the tool's pinned input
// schema (call.Target.Tool, set by Gate); other operations pass. Absent or null arguments count as an
// empty object.
type Validate struct{}

var _ pipeline.Stage = Validate{}

// Name implements pipeline.Stage.
func (Validate) Name() string { return "validate" }

// Handle implements pipeline.Stage.
func (Validate) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Op != pipeline.OpCall || c.Target.Kind != pipeline.KindTool {
		return next(ctx, c) // only tool calls carry schema-typed arguments
	}
	if c.Target.Tool.ValidateArguments == nil {
		// Gate did not run, or the configuration is broken: fail closed.
		return nil, pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
	}
	args, ok := c.DecodedArguments() // decoded by Authorize, when it could
	if !ok {
		var err error
		if args, err = decode(c.Arguments); err != nil {
			return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "the arguments are not valid JSON")
		}
	}
	if err := c.Target.Tool.ValidateArguments(args); err != nil {
		return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments,
			"the arguments do not match the input schema of %s: %s", c.Target.Tool.Action, truncate(err.Error(), maxDetail))
	}
	return next(ctx, c)
}

// decode reads one JSON value, numbers as json.Number so that the
// validator sees them exactly.
func decode(raw json.RawMessage) (any, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}
