package llm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
)

// statusError is a provider's 429 or 5xx answer.
type statusError struct {
	status int
	header http.Header
	body   []byte
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

// brokenError is a stream that ended before the provider finished it,
// after the caller got part of it: never retried.
type brokenError struct{ err error }

func (e *brokenError) Error() string { return "stream ended early: " + e.err.Error() }
func (e *brokenError) Unwrap() error { return e.err }

// classifier is the LLM protocol's resilience.Classifier.
type classifier struct{}

var _ resilience.Classifier = classifier{}

// Outcome: a provider's 5xx, a broken stream or a transport failure is a
// failure; its 429, the gateway's own configuration and the caller going
// away say nothing about its health.
func (classifier) Outcome(err error) resilience.Outcome {
	var se *statusError
	switch {
	case errors.As(err, &se):
		if se.status == http.StatusTooManyRequests {
			return resilience.Excluded
		}
		return resilience.Failure
	case upstream.ConfigError(err), errors.Is(err, errCallerGone):
		return resilience.Excluded
	}
	return resilience.Failure
}

// Retryable: a provider's 429 or 5xx (nothing was generated), or a
// connection that could not be made. Never a timeout or a broken
// connection once the request was sent (the provider may have run, and
// billed, the call), never once the caller got part of a stream.
func (classifier) Retryable(err error) bool {
	var (
		se *statusError
		op *net.OpError
		be *brokenError
	)
	switch {
	case errors.As(err, &be), errors.Is(err, errCallerGone), upstream.ConfigError(err), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &se):
		return true
	case errors.As(err, &op):
		return op.Op == "dial"
	}
	return false
}

// explain says what the protocol's errors mean to a caller.
func explain(err error) (string, bool) {
	var (
		se *statusError
		be *brokenError
	)
	switch {
	case errors.As(err, &be):
		return "its answer stream ended before the answer was complete; the tokens streamed so far are billed as an estimate", true
	case errors.As(err, &se):
		return fmt.Sprintf("it answered HTTP %d", se.status), true
	}
	return "", false
}
