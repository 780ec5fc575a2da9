package upstream

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// Retry backoff defaults: the n-th retry waits a random time between half
// and all of min(DefaultBackoffMax, DefaultBackoffBase·2ⁿ).
const (
	DefaultBackoffBase = 50 * time.Millisecond
	DefaultBackoffMax  = 2 * time.Second
)

// retriable reports whether the operator's classification lets the pool
// send a call again after a failure that may have reached the upstream.
// Unclassified tools are treated as mutating.
func retriable(class configv1.ToolClass) bool {
	return class == configv1.ToolClass_TOOL_CLASS_READ_ONLY || class == configv1.ToolClass_TOOL_CLASS_IDEMPOTENT
}

// configError reports errors the gateway's own configuration or limits
// caused: retrying cannot help and they say nothing about the upstream's
// health.
func configError(err error) bool {
	var unusableErr *unusableError
	return errors.As(err, &unusableErr) || errors.Is(err, errPoolClosed) || errors.Is(err, errCredentialRejected) ||
		errors.Is(err, errRequestTooLarge) || errors.Is(err, errResponseTooLarge) || errors.Is(err, egress.ErrRefused) ||
		errors.Is(err, oauthcc.ErrNoToken) || errors.Is(err, secretbind.ErrNotBound) || errors.Is(err, oauthcc.ErrTokenURLNotBound)
}

// retryable reports whether a failed attempt may be sent again (for a
// retriable tool): it was not delivered, the connection failed, the
// upstream answered 5xx or 429, or the attempt timed out. Never after an
// answer (a JSON-RPC error, a tool's isError, a malformed message).
func retryable(err error) bool {
	var (
		rpcErr  *upstreamRPCError
		httpErr *mcpclient.HTTPError
		netErr  net.Error
	)
	switch {
	case err == nil, configError(err), errors.As(err, &rpcErr):
		return false
	case errors.As(err, &httpErr):
		return httpErr.Status >= 500 || httpErr.Status == http.StatusTooManyRequests
	case mcpclient.NotDelivered(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, mcpclient.ErrNoResponse):
		return true
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}

// breakerOutcome is what an attempt's result tells the circuit breaker:
// nil when the upstream answered (even with an error), errBreakerFailure
// when it did not answer usefully (transport failure, timeout, 5xx, a
// broken message), errBreakerExcluded when the outcome says nothing about
// its health (the caller left; the gateway's configuration or limits
// refused it; a 4xx such as 429).
func breakerOutcome(caller context.Context, err error) error {
	var (
		rpcErr  *upstreamRPCError
		httpErr *mcpclient.HTTPError
	)
	switch {
	case err == nil, errors.As(err, &rpcErr):
		return nil
	case errors.Is(caller.Err(), context.Canceled), configError(err):
		return errBreakerExcluded
	case errors.As(err, &httpErr) && httpErr.Status < 500:
		return errBreakerExcluded
	}
	return errBreakerFailure
}

// backoff is the wait before retry n (0-based), with jitter.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	d := ceiling
	if n < 30 {
		d = min(ceiling, base<<n)
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1) //nolint:gosec // jitter, not security
}
