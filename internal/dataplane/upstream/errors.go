package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/egress"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// Explain says why err made an upstream unavailable, in words safe for
// callers (no secret, no upstream-supplied text), for the errors of one
// protocol; ok is false for an error it does not know.
type Explain func(err error) (why string, ok bool)

// Refusal turns err into an upstream_unavailable Refusal for upstream
// name. This layer's own errors are explained first, then explain's
// (nil: none); anything else is "could not reach it".
func Refusal(name string, err error, explain Explain) *pipeline.Refusal {
	why, ok := explainOwn(err)
	if !ok && explain != nil {
		why, ok = explain(err)
	}
	if !ok {
		why = "the gateway could not reach it or the connection broke"
	}
	return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable, "upstream %q is unavailable: %s", name, why)
}

// Fail turns the error of a failed call of op on the upstream of s into
// what its caller may see, and logs what failed: a Refusal (the guard's)
// as is; the caller's own cancellation as an error wrapping it; a timeout
// as upstream_timeout naming the upstream's timeout; anything else as
// Refusal says.
func Fail(ctx context.Context, log *slog.Logger, s *Settings, op, stage string, err error, explain Explain) error {
	var ref *pipeline.Refusal
	if errors.As(err, &ref) {
		return ref
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("call %s on upstream %q: %w", op, s.Name, ctx.Err())
	}
	ref = Refusal(s.Name, err, explain)
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		ref = pipeline.Refuse(pipeline.ReasonUpstreamTimeout,
			"upstream %q did not answer within its %s timeout; try again later", s.Name, s.Timeout)
	}
	log.WarnContext(ctx, "upstream call failed",
		slog.String("upstream", s.Name), slog.String("op", op), slog.String("stage", stage),
		slog.String("reason", string(ref.Reason)), slog.Any("error", err))
	return ref
}

// explainOwn explains the errors of this layer.
func explainOwn(err error) (string, bool) {
	var unusableErr *unusableError
	switch {
	case errors.As(err, &unusableErr):
		return unusableErr.why, true
	case errors.Is(err, errClosed):
		return errClosed.Error(), true
	case errors.Is(err, errCredentialRejected):
		return "it refused the gateway's credential for it; an operator must fix the upstream's credential", true
	case errors.Is(err, secretbind.ErrNotBound), errors.Is(err, oauthcc.ErrTokenURLNotBound):
		return notBound, true
	case errors.Is(err, oauthcc.ErrNoToken):
		return "its OAuth token endpoint did not issue the gateway a token; an operator must check the upstream's client credentials", true
	case errors.Is(err, errRequestTooLarge):
		return "the request is larger than the upstream's max_request_bytes", true
	case errors.Is(err, errResponseTooLarge):
		return "its response is larger than the upstream's max_response_bytes", true
	case errors.Is(err, egress.ErrRefused):
		return "its address is refused by the egress policy", true
	}
	return "", false
}

// ConfigError reports errors the gateway's own configuration or limits
// caused (an unusable upstream, a refused credential, a size limit, the
// egress policy, OAuth, shutdown): retrying cannot help and they say
// nothing about the upstream's health. For a protocol's
// resilience.Classifier.
func ConfigError(err error) bool {
	var unusableErr *unusableError
	return errors.As(err, &unusableErr) || errors.Is(err, errClosed) || errors.Is(err, errCredentialRejected) ||
		errors.Is(err, errRequestTooLarge) || errors.Is(err, errResponseTooLarge) || errors.Is(err, egress.ErrRefused) ||
		errors.Is(err, oauthcc.ErrNoToken) || errors.Is(err, secretbind.ErrNotBound) || errors.Is(err, oauthcc.ErrTokenURLNotBound)
}

// ConnectionError reports a failed or broken connection (a network error,
// an unexpected EOF, a reset or refused connection): worth another
// attempt for an operation that may be repeated. For a protocol's
// resilience.Classifier.
func ConnectionError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}
