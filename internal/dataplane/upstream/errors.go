package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/egress"
)

// notDelivered reports failures that prove the upstream did not receive
// the request: it answered that it has no such session, or the session's
// connection was already closed before the request was written.
func notDelivered(err error) bool {
	return errors.Is(err, mcp.ErrSessionMissing) || errors.Is(err, mcp.ErrConnectionClosed)
}

// sessionBroken reports failures after which the session must not be
// reused. A JSON-RPC error is the upstream answering (the session is fine);
// a timeout leaves the session usable too (the SDK tells the upstream the
// call was cancelled).
func sessionBroken(err error) bool {
	var rpcErr *jsonrpc.Error
	return !errors.As(err, &rpcErr) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
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
		rpcErr      *jsonrpc.Error
	)
	switch {
	case errors.As(err, &unusableErr):
		why = unusableErr.why
	case errors.Is(err, errPoolClosed):
		why = errPoolClosed.Error()
	case errors.Is(err, errCredentialRejected):
		why = "it refused the gateway's credential for it; an operator must fix the upstream's credential"
	case errors.Is(err, errRequestTooLarge):
		why = "the request is larger than the upstream's max_request_bytes"
	case errors.Is(err, errResponseTooLarge):
		why = "its response is larger than the upstream's max_response_bytes"
	case errors.Is(err, egress.ErrRefused):
		why = "its address is refused by the egress policy"
	case errors.As(err, &rpcErr):
		why = fmt.Sprintf("it answered with JSON-RPC error %d (the tool may have changed upstream)", rpcErr.Code)
	}
	return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable, "upstream %q is unavailable: %s", name, why)
}
