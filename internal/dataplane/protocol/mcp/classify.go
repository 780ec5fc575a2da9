package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
)

// This file classifies what went wrong with an upstream, three ways:
//
//   - it could not be reached, or failed in HTTP's own terms (a broken
//     connection, HTTP 5xx, a stream cut before the result):
//     upstream_unavailable, "could not reach it";
//   - it answered, but broke the protocol (mcpclient.ProtocolError: a
//     malformed message, an unexpected content type, the wrong response,
//     a JSON-RPC error where a tools/call result was due):
//     upstream_protocol_error, quoting a sanitised excerpt of its words;
//   - it did not answer in time: upstream_timeout (upstream.Fail).
//
// The breaker counts the first two as failures; the gateway's own
// configuration and limits, and HTTP 4xx such as 429, say nothing about
// the upstream's health.

// classifier is MCP's resilience.Classifier.
type classifier struct{}

var _ resilience.Classifier = classifier{}

// Outcome: an upstream that answered within the protocol is a success
// (resources/read's "not found" included: its errors reach the caller);
// the gateway's own configuration or limits, and a 4xx such as 429, say
// nothing about its health; anything else (transport, timeout, 5xx, a
// broken stream, a protocol error) is a failure.
func (classifier) Outcome(err error) resilience.Outcome {
	var (
		protoErr *mcpclient.ProtocolError
		httpErr  *mcpclient.HTTPError
	)
	switch {
	case errors.As(err, &protoErr):
		return resilience.Failure
	case upstream.ConfigError(err), errors.As(err, &httpErr) && httpErr.Status < 500:
		return resilience.Excluded
	}
	return resilience.Failure
}

// Retryable: an attempt that was not delivered, whose connection failed,
// that the upstream answered with 5xx or 429, or that timed out. Never
// after an answer (a protocol error included: the same upstream would
// answer the same), never for the gateway's own refusals.
func (classifier) Retryable(err error) bool {
	var (
		protoErr *mcpclient.ProtocolError
		httpErr  *mcpclient.HTTPError
	)
	switch {
	case upstream.ConfigError(err), errors.As(err, &protoErr):
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
	var httpErr *mcpclient.HTTPError
	switch {
	case errors.As(err, &httpErr):
		return fmt.Sprintf("it answered HTTP %d", httpErr.Status), true
	case errors.Is(err, mcpclient.ErrNoResponse):
		return "its answer stream ended before the result; the call may or may not have run", true
	}
	return "", false
}

// protocolRefusal is the refusal of an upstream that broke the protocol:
// what was wrong, in the gateway's words, and the excerpt of the
// upstream's (already sanitised by mcpclient).
func protocolRefusal(name string, pe *mcpclient.ProtocolError) *pipeline.Refusal {
	if pe.Excerpt == "" {
		return pipeline.Refuse(pipeline.ReasonUpstreamProtocolError,
			"upstream %q answered, but broke the MCP protocol: %s; an operator must check the upstream", name, pe.What)
	}
	return pipeline.Refuse(pipeline.ReasonUpstreamProtocolError,
		"upstream %q answered, but broke the MCP protocol: %s: %q; an operator must check the upstream", name, pe.What, pe.Excerpt)
}

// refusal turns err into what a caller may see of it: a protocol error as
// upstream_protocol_error, anything else as upstream_unavailable with a
// message that carries no secret and no upstream-supplied text.
func refusal(name string, err error) *pipeline.Refusal {
	var pe *mcpclient.ProtocolError
	if errors.As(err, &pe) {
		return protocolRefusal(name, pe)
	}
	return upstream.Refusal(name, err, explain)
}

// fail logs a failed call and returns what the caller may see: a
// protocol error (unless the caller left) as upstream_protocol_error,
// the rest as upstream.Fail says.
func (p *Pool) fail(ctx context.Context, s *upstream.Settings, op, stage string, err error) error {
	var (
		pe  *mcpclient.ProtocolError
		ref *pipeline.Refusal
	)
	if errors.As(err, &pe) && !errors.As(err, &ref) && ctx.Err() == nil {
		ref = protocolRefusal(s.Name, pe)
		p.logger.WarnContext(ctx, "upstream broke the protocol",
			slog.String("upstream", s.Name), slog.String("op", op), slog.String("stage", stage),
			slog.String("reason", string(ref.Reason)), slog.Any("error", err))
		return ref
	}
	return upstream.Fail(ctx, p.logger, s, op, stage, err, explain)
}
