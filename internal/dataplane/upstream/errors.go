package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/egress"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// upstreamRPCError is a JSON-RPC error the upstream answered with.
type upstreamRPCError struct{ code int }

func (e *upstreamRPCError) Error() string { return fmt.Sprintf("JSON-RPC error %d", e.code) }

// rpcError reads an error response's code (its message is the upstream's
// text and is not shown to callers).
func rpcError(m *mcpwire.Message) error {
	e, err := m.ErrorObject()
	if err != nil {
		return err
	}
	return &upstreamRPCError{code: e.Code}
}

// fail logs a failed call with its detail and returns what the caller may
// see: the caller's own cancellation as is, everything else as a Refusal.
func (p *Pool) fail(ctx context.Context, s settings, tool, stage string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("call %s on upstream %q: %w", tool, s.name, ctx.Err())
	}
	ref := refusal(s.name, err)
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		ref = pipeline.Refuse(pipeline.ReasonUpstreamTimeout,
			"upstream %q did not answer within its %s timeout; try again later", s.name, s.timeout)
	}
	p.logger.WarnContext(ctx, "upstream call failed",
		slog.String("upstream", s.name), slog.String("tool", tool), slog.String("stage", stage),
		slog.String("reason", string(ref.Reason)), slog.Any("error", err))
	return ref
}

// refusal turns err into an upstream_unavailable Refusal whose message
// carries no secret and no upstream-supplied text.
func refusal(name string, err error) *pipeline.Refusal {
	why := "the gateway could not reach it or the connection broke"
	var (
		unusableErr *unusableError
		rpcErr      *upstreamRPCError
		httpErr     *mcpclient.HTTPError
	)
	switch {
	case errors.As(err, &unusableErr):
		why = unusableErr.why
	case errors.Is(err, errPoolClosed):
		why = errPoolClosed.Error()
	case errors.Is(err, errCredentialRejected):
		why = "it refused the gateway's credential for it; an operator must fix the upstream's credential"
	case errors.Is(err, secretbind.ErrNotBound), errors.Is(err, oauthcc.ErrTokenURLNotBound):
		why = notBound
	case errors.Is(err, oauthcc.ErrNoToken):
		why = "its OAuth token endpoint did not issue the gateway a token; an operator must check the upstream's client credentials"
	case errors.Is(err, errRequestTooLarge):
		why = "the request is larger than the upstream's max_request_bytes"
	case errors.Is(err, errResponseTooLarge):
		why = "its response is larger than the upstream's max_response_bytes"
	case errors.Is(err, egress.ErrRefused):
		why = "its address is refused by the egress policy"
	case errors.As(err, &rpcErr):
		why = fmt.Sprintf("it answered with JSON-RPC error %d (the tool may have changed upstream)", rpcErr.code)
	case errors.As(err, &httpErr):
		why = fmt.Sprintf("it answered HTTP %d", httpErr.Status)
	case errors.Is(err, mcpclient.ErrNoResponse):
		why = "its answer stream ended before the result; the call may or may not have run"
	}
	return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable, "upstream %q is unavailable: %s", name, why)
}
