package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/llmwire"
)

// wire is a call's state shared by the endpoint and the forwarder
// (pipeline.Relay.Wire): the request as parsed, the caller's headers, and
// the caller's response, which a stream starts writing while the call
// runs. Safe for concurrent use.
type wire struct {
	api       llmwire.API
	family    llmwire.Family // for listings (api is 0)
	req       *llmwire.Request
	in        http.Header // the caller's request headers
	outputCap int64

	w  http.ResponseWriter
	rc *http.ResponseController

	mu sync.Mutex
	// started: a stream's status and headers are written.
	started bool
	// status and header are the provider's answer's, for a complete
	// answer (set by the forwarder before it returns).
	status int
	header http.Header
}

// errCallerGone is a stream the caller stopped reading.
var errCallerGone = errors.New("the caller closed the stream")

// begin writes a stream's status and the provider's relayed headers,
// once.
func (w *wire) begin(status int, h http.Header) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	copyHeaders(w.w.Header(), h)
	w.w.Header().Set("Content-Type", "text/event-stream")
	w.w.Header().Set("X-Content-Type-Options", "nosniff")
	w.w.Header().Set("Cache-Control", "no-cache")
	w.w.WriteHeader(status)
}

// send writes one stream event to the caller (pipeline.Relay.Notify).
func (w *wire) send(frame []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		return errors.New("send before the stream began")
	}
	if _, err := w.w.Write(frame); err != nil {
		return errCallerGone
	}
	if err := w.rc.Flush(); err != nil {
		return errCallerGone
	}
	return nil
}

// answer records a complete answer's status and headers.
func (w *wire) answer(status int, h http.Header) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status, w.header = status, h
}

// finish writes what the caller still gets once the call returned: a
// stream's held-back last events (written after the audit record, like
// every final answer), or an error event when it ended in error; else the
// whole answer, the provider's error, or the gateway's refusal.
func (w *wire) finish(res *pipeline.Result, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		if err == nil && res != nil {
			_, _ = w.w.Write(res.Body) //nolint:gosec // the provider's events, sent as text/event-stream with nosniff, never HTML
		}
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errCallerGone) {
			ref := pipeline.AsRefusal(err)
			_, _ = w.w.Write(llmwire.ErrorEvent(w.api, string(ref.Reason), ref.Message)) //nolint:gosec // a JSON event, as above
		}
		_ = w.rc.Flush()
		return
	}
	family := w.api.Family()
	if err != nil {
		writeRefusal(w.w, family, pipeline.AsRefusal(err))
		return
	}
	if res == nil {
		writeRefusal(w.w, family, pipeline.AsRefusal(errors.New("no result")))
		return
	}
	copyHeaders(w.w.Header(), w.header)
	w.w.Header().Set("Content-Type", "application/json")
	w.w.Header().Set("X-Content-Type-Options", "nosniff")
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	w.w.WriteHeader(status)
	if res.Failure != nil {
		_, _ = w.w.Write(res.Failure) //nolint:gosec // the provider's JSON answer, sent as application/json with nosniff
	} else {
		_, _ = w.w.Write(res.Body) //nolint:gosec // likewise
	}
}

// relayedHeaders are the provider's response headers the caller gets:
// request ids and rate-limit information, nothing that names the
// gateway's account.
func relayed(name string) bool {
	switch name {
	case "X-Request-Id", "Request-Id", "Openai-Processing-Ms", "Openai-Version", "Retry-After", "Retry-After-Ms":
		return true
	}
	return strings.HasPrefix(name, "X-Ratelimit-") || strings.HasPrefix(name, "Anthropic-Ratelimit-")
}

// copyHeaders copies the relayed headers of src (canonical names) to dst.
func copyHeaders(dst, src http.Header) {
	for k, vs := range src {
		if relayed(k) {
			dst[k] = append([]string(nil), vs...)
		}
	}
}

// status is the HTTP status of a refusal.
func status(r pipeline.Reason) int {
	switch r {
	case pipeline.ReasonUnauthenticated:
		return http.StatusUnauthorized
	case pipeline.ReasonDenied, pipeline.ReasonUnpriced, pipeline.ReasonQuarantined, pipeline.ReasonInspectionBlocked:
		return http.StatusForbidden
	case pipeline.ReasonUnknownModel, pipeline.ReasonUnknownTool:
		return http.StatusNotFound
	case pipeline.ReasonInvalidArguments:
		return http.StatusBadRequest
	case pipeline.ReasonBudgetExhausted, pipeline.ReasonRateLimited:
		return http.StatusTooManyRequests
	case pipeline.ReasonDegraded, pipeline.ReasonFrozen, pipeline.ReasonStale, pipeline.ReasonNoConfig, pipeline.ReasonAuditUnavailable,
		pipeline.ReasonInspectionUnavailable:
		return http.StatusServiceUnavailable
	case pipeline.ReasonUpstreamUnavailable:
		return http.StatusBadGateway
	case pipeline.ReasonUpstreamTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// writeRefusal answers with the gateway's refusal in family's error shape,
// its reason in ReasonHeader and, when it has one, Retry-After.
func writeRefusal(w http.ResponseWriter, family llmwire.Family, r *pipeline.Refusal) {
	w.Header().Set(ReasonHeader, string(r.Reason))
	if r.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((r.RetryAfter+999_999_999)/1_000_000_000), 10))
	}
	if q := r.Quota; q != nil {
		setRateLimitHeaders(w.Header(), q, r.RetryAfter)
	}
	writeError(w, family, status(r.Reason), string(r.Reason), r.Message)
}

// setRateLimitHeaders describes the limit that refused a call in the IETF
// RateLimit header fields (draft-ietf-httpapi-ratelimit-headers): the
// policy's quota and window, and that nothing remains until it resets.
func setRateLimitHeaders(h http.Header, q *pipeline.Quota, retry time.Duration) {
	name := strconv.Quote(q.Policy)
	h.Set("RateLimit-Policy", fmt.Sprintf("%s;q=%d;w=%d", name, q.Limit, max(int64(q.Window/time.Second), 1)))
	h.Set("RateLimit", fmt.Sprintf("%s;r=0;t=%d", name, int64((retry+time.Second-1)/time.Second)))
}

// writeError answers with an error in family's shape.
func writeError(w http.ResponseWriter, family llmwire.Family, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(llmwire.ErrorBody(family, status, code, msg)) //nolint:gosec // JSON-encoded, application/json with nosniff
}
