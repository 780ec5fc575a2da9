package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// upstreamRPCError is a JSON-RPC error the upstream answered a tools/call
// with.
type upstreamRPCError struct{ code int }

func (e *upstreamRPCError) Error() string { return fmt.Sprintf("JSON-RPC error %d", e.code) }

// upstreamError reads an error response's code (its message is the
// upstream's text and is not shown to callers).
func upstreamError(m *mcpwire.Message) error {
	e, err := m.ErrorObject()
	if err != nil {
		return err
	}
	return &upstreamRPCError{code: e.Code}
}

// classifier is MCP's resilience.Classifier.
type classifier struct{}

var _ resilience.Classifier = classifier{}

// Outcome: the upstream answering (a JSON-RPC error included) is a
// success; the gateway's own configuration or limits, and a 4xx such as
// 429, say nothing about its health; anything else (transport, timeout,
// 5xx, a broken stream or message) is a failure.
func (classifier) Outcome(err error) resilience.Outcome {
	var (
		rpcErr  *upstreamRPCError
		httpErr *mcpclient.HTTPError
	)
	switch {
	case errors.As(err, &rpcErr):
		return resilience.Success
	case upstream.ConfigError(err), errors.As(err, &httpErr) && httpErr.Status < 500:
		return resilience.Excluded
	}
	return resilience.Failure
}

// Retryable: an attempt that was not delivered, whose connection failed,
// that the upstream answered with 5xx or 429, or that timed out. Never
// after an answer (a JSON-RPC error, a tool's isError, a malformed
// message), never for the gateway's own refusals.
func (classifier) Retryable(err error) bool {
	var (
		rpcErr  *upstreamRPCError
		httpErr *mcpclient.HTTPError
	)
	switch {
	case upstream.ConfigError(err), errors.As(err, &rpcErr):
		return false
	case errors.As(err, &httpErr):
		return httpErr.Status >= 500 || httpErr.Status == http.StatusTooManyRequests
	case mcpclient.NotDelivered(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, mcpclient.ErrNoResponse):
		return true
	}
	return upstream.ConnectionError(err)
}

// explain says what MCP's own errors mean to a caller (upstream.Explain).
func explain(err error) (string, bool) {
	var (
		rpcErr  *upstreamRPCError
		httpErr *mcpclient.HTTPError
	)
	switch {
	case errors.As(err, &rpcErr):
		return fmt.Sprintf("it answered with JSON-RPC error %d (the tool may have changed upstream)", rpcErr.code), true
	case errors.As(err, &httpErr):
		return fmt.Sprintf("it answered HTTP %d", httpErr.Status), true
	case errors.Is(err, mcpclient.ErrNoResponse):
		return "its answer stream ended before the result; the call may or may not have run", true
	}
	return "", false
}

// refusal turns err into an upstream_unavailable Refusal whose message
// carries no secret and no upstream-supplied text.
func refusal(name string, err error) *pipeline.Refusal { return upstream.Refusal(name, err, explain) }

// fail logs a failed call and returns what the caller may see (see
// upstream.Fail).
func (p *Pool) fail(ctx context.Context, s *upstream.Settings, op, stage string, err error) error {
	return upstream.Fail(ctx, p.logger, s, op, stage, err, explain)
}
