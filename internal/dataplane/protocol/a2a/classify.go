package a2a

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/a2aclient"
	"github.com/portcullis-gw/portcullis/internal/a2awire"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
)

// classifier is A2A's resilience.Classifier.
type classifier struct{}

var _ resilience.Classifier = classifier{}

// Outcome: the agent answering (a JSON-RPC error included: it is a
// response, not an error here) is a success, and so is a stream the
// gateway itself stopped; the gateway's own configuration or limits, and
// a 4xx such as 429, say nothing about the agent's health; anything else
// (transport, timeout, 5xx, a malformed answer, a broken stream) is a
// failure.
func (classifier) Outcome(err error) resilience.Outcome {
	var (
		httpErr *a2aclient.HTTPError
		stop    *stopError
	)
	switch {
	case errors.As(err, &stop):
		return resilience.Success
	case upstream.ConfigError(err), errors.As(err, &httpErr) && httpErr.Status < 500:
		return resilience.Excluded
	}
	return resilience.Failure
}

// Retryable: an attempt that was not delivered, whose connection failed
// before anything reached the caller, that the agent answered with 5xx or
// 429, or that timed out. Never after a stream's event reached the caller,
// never after a malformed answer, never for the gateway's own refusals.
func (classifier) Retryable(err error) bool {
	var (
		httpErr *a2aclient.HTTPError
		stop    *stopError
		relayed *errRelayed
	)
	switch {
	case upstream.ConfigError(err), errors.As(err, &stop), errors.As(err, &relayed), errors.Is(err, a2aclient.ErrMalformed):
		return false
	case errors.As(err, &httpErr):
		return httpErr.Status >= 500 || httpErr.Status == http.StatusTooManyRequests
	case a2aclient.NotDelivered(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, a2aclient.ErrNoResponse):
		return true
	}
	return upstream.ConnectionError(err)
}

// explain says what A2A's own errors mean to a caller (upstream.Explain).
func explain(err error) (string, bool) {
	var httpErr *a2aclient.HTTPError
	switch {
	case errors.As(err, &httpErr):
		return fmt.Sprintf("it answered HTTP %d", httpErr.Status), true
	case errors.Is(err, a2aclient.ErrNoResponse):
		return "its answer ended before a response; the request may or may not have been processed", true
	case errors.Is(err, a2aclient.ErrMalformed), errors.Is(err, a2awire.ErrShape), errors.Is(err, errLongID):
		return "its answer is not a valid A2A response", true
	case errors.Is(err, a2awire.ErrEventTooLarge):
		return "it sent a stream event larger than the upstream's max_response_bytes", true
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "its stream broke off in the middle of an event", true
	}
	return "", false
}
