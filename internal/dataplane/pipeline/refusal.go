package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// Reason is a machine-readable refusal reason. The values are stable API:
// agents and dashboards branch on them.
type Reason string

// Refusal reasons.
const (
	ReasonUnauthenticated     Reason = "unauthenticated"
	ReasonDenied              Reason = "denied"
	ReasonDegraded            Reason = "degraded"
	ReasonFrozen              Reason = "frozen"
	ReasonStale               Reason = "stale"
	ReasonNoConfig            Reason = "no_config"
	ReasonUnknownTool         Reason = "unknown_tool"
	ReasonUnknownTask         Reason = "unknown_task" // the task or context named does not exist, or is another caller's
	ReasonQuarantined         Reason = "quarantined"  // the upstream changed the tool after approval
	ReasonInvalidArguments    Reason = "invalid_arguments"
	ReasonUpstreamUnavailable Reason = "upstream_unavailable"
	// ReasonUpstreamProtocolError: the upstream answered, but broke its
	// protocol (a malformed message, an unexpected content type, an error
	// where a result was due); the message quotes a sanitised excerpt of
	// what it said. upstream_unavailable is for an upstream that could not
	// be reached or failed (HTTP 5xx, a broken connection).
	ReasonUpstreamProtocolError Reason = "upstream_protocol_error"
	ReasonUpstreamTimeout       Reason = "upstream_timeout"
	ReasonAuditUnavailable      Reason = "audit_unavailable"
	// ReasonInspectionBlocked: an inspection rule blocked the call, withheld
	// its answer or ended its stream.
	ReasonInspectionBlocked Reason = "inspection_blocked"
	// ReasonInspectionUnavailable: a classifier an inspection rule asks
	// (failing closed) did not answer.
	ReasonInspectionUnavailable Reason = "inspection_unavailable"
	ReasonInternal              Reason = "internal"
	// ReasonUnknownModel: no model of that name is served.
	ReasonUnknownModel Reason = "unknown_model"
	// ReasonBudgetExhausted: a budget that applies to the call would be
	// exceeded; RetryAfter says when its window resets.
	ReasonBudgetExhausted Reason = "budget_exhausted"
	// ReasonUnpriced: a cost budget applies to the call but its target
	// has no price.
	ReasonUnpriced Reason = "unpriced"
	// ReasonRateLimited: a rate or concurrency limit that applies to the
	// call has no capacity left now; RetryAfter says when it may.
	ReasonRateLimited Reason = "rate_limited"
	// ReasonOriginNotAllowed: a browser page of an origin the operator did
	// not allow (setting mcp.allowed-origins) sent the request.
	ReasonOriginNotAllowed Reason = "origin_not_allowed"
	// ReasonLimitExceeded: the caller holds as much of something bounded
	// as it may (resource subscriptions, say); it must release some first.
	ReasonLimitExceeded Reason = "limit_exceeded"
	// ReasonToolVersionIncompatible: the upstream serves a definition of
	// the tool that the version the caller is assigned is not compatible
	// with (package toolcompat).
	ReasonToolVersionIncompatible Reason = "tool_version_incompatible"
	// ReasonToolVersionRetired: the caller's version of the tool was
	// deprecated and its sunset has come.
	ReasonToolVersionRetired Reason = "tool_version_retired"
)

// Reasons lists every reason (for metrics label pre-registration).
var Reasons = []Reason{
	ReasonUnauthenticated, ReasonDenied, ReasonDegraded, ReasonFrozen, ReasonStale, ReasonNoConfig,
	ReasonUnknownTool, ReasonUnknownTask, ReasonQuarantined, ReasonInvalidArguments, ReasonUpstreamUnavailable,
	ReasonUpstreamProtocolError, ReasonUpstreamTimeout, ReasonAuditUnavailable, ReasonInternal, ReasonOriginNotAllowed,
	ReasonUnknownModel, ReasonBudgetExhausted, ReasonUnpriced, ReasonLimitExceeded, ReasonRateLimited,
	ReasonToolVersionIncompatible, ReasonToolVersionRetired,
	ReasonInspectionBlocked, ReasonInspectionUnavailable,
}

// Refusal is a call the gateway refused. Message is safe to show to the
// caller: it says what happened and what to do, and never carries secrets.
type Refusal struct {
	Reason  Reason
	Message string
	// RetryAfter, when set, is how long the caller should wait before the
	// same call could be admitted (a budget's window reset).
	RetryAfter time.Duration
	// Quota, when set, describes the limit that refused the call, for
	// protocols that carry RateLimit-Policy and RateLimit headers.
	Quota *Quota
}

// Quota is the limit behind a rate_limited refusal, as the IETF
// RateLimit header fields describe one.
type Quota struct {
	// Policy is the limit's name.
	Policy string
	// Limit is the calls it admits per Window, fleet-wide.
	Limit  int64
	Window time.Duration
}

func (r *Refusal) Error() string { return fmt.Sprintf("%s: %s", r.Reason, r.Message) }

// Refuse builds a Refusal.
func Refuse(reason Reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsRefusal extracts a Refusal from err; any other error becomes an
// internal refusal with a generic message (the detail stays in logs).
func AsRefusal(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return &Refusal{Reason: ReasonInternal, Message: "the gateway failed to process the call; it has been logged"}
}
