// Package stages holds the data plane's cross-cutting pipeline stages.
// Each implements [pipeline.Stage], sees only the protocol-neutral
// [*pipeline.Call] — its operation and target kind, never its protocol or
// method — and is safe for concurrent use.
//
// [Default] returns them in order:
//
//	Authenticate  credential → agent, once; an unidentified caller is
//	              refused and counted (package refusals), not audited
//	              one by one
//	Audit         one record per operation of an identified agent,
//	              whatever the stages after it decide
//	Identify      on-behalf-of user token → user
//	Gate          serving mode and emergency brake; resolves and admits
//	              the target — a pinned tool, remote agent or model —
//	              (unknown, quarantined, degraded, frozen)
//	Limit         rate limits on capacity leased from the control plane
//	              (package ratelimit), then budgets that reserve the
//	              call's worst case and settle on its usage (package limit)
//	Inspect       runtime inspection: the request's findings (Cedar's
//	              context.findings) before Authorize; the response —
//	              streamed frames and the result — after forward
//	Rollout       while a policy rollout is staged: the decision not
//	              enforced (candidate in shadow, active for a canary
//	              agent), compared and counted around Authorize
//	Authorize     Cedar policies; for lists, what the caller may see
//	Validate      a tool call's arguments against the pinned schema
//
// and the terminal forward (each protocol's forwarder, inside the one
// resilience wrapper).
//
// Authenticate comes before Audit so that anonymous floods cannot fill the
// audit log; everything after it is recorded. Gate runs before Authorize
// so that a stale or degraded data plane refuses without evaluating
// policies it may no longer be entitled to apply, and lists use Gate's own
// per-target rule (Admit), so that a list never shows what a call would be
// refused. Authorize runs before Validate so that a caller learns nothing
// about a tool's input schema unless policy lets it call the tool;
// Authorize does not depend on Validate, because the configuration
// converts arguments for Cedar exactly as the schema types them and denies
// what does not fit.
//
// Inspect runs before Authorize, not after Validate as the architecture
// first drew it: what it finds in the request is policy input
// (context.findings), so it must be known when policies are evaluated.
// Computing findings lazily from Authorize instead would hide a
// per-operation cost inside the policy engine and make the decision cache
// depend on content it never sees; running eagerly costs inspecting calls
// that policy then denies, which the per-stage budget accounts for. It
// runs after Gate (the target is resolved, so rules scope by upstream and
// tool) and after Limit (a caller over its limits costs no inspection).
// The same stage inspects the response on the way back, so its own time
// covers both sides.
package stages

import (
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Options are the pieces the default stages need, and the stages that
// fill the seams.
type Options struct {
	// Audit is the Audit stage.
	Audit Audit
	// Anonymous counts refusals of callers no agent could be identified
	// for (nil: not counted).
	Anonymous AnonymousRecorder
	// Limit runs after Gate and before Inspect: rate limits, quotas,
	// budgets.
	Limit []pipeline.Stage
	// Rollout counts the calls of a staged policy rollout (nil: no
	// rollout stage; calls are still decided by the canary's rule).
	Rollout RolloutRecorder
	// Inspect is runtime inspection (the Inspect stage); nil: none.
	Inspect pipeline.Stage
}

// Default returns the stages in order (see the package documentation).
func Default(o Options) []pipeline.Stage {
	out := []pipeline.Stage{
		Authenticate{Anonymous: o.Anonymous},
		o.Audit,
		Identify{},
		Gate{},
	}
	out = append(out, o.Limit...)
	if o.Inspect != nil {
		out = append(out, o.Inspect)
	}
	if o.Rollout != nil {
		out = append(out, Rollout{Recorder: o.Rollout})
	}
	return append(out, Authorize{}, Validate{})
}

// Messages shared by stages. They are sent to callers: each says what
// happened and what to do.
const (
	msgNoConfig = "the data plane has no configuration yet; retry shortly"
	msgStale    = "configuration is older than --max-stale; every call is refused until the control plane is back"
	msgInternal = "the gateway failed to process the call; it has been logged"
)

// maxEcho bounds caller-supplied text (a tool name) echoed in a message.
const maxEcho = 128

// maxDetail bounds detail (validator or evaluation messages) in a message.
const maxDetail = 1024

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// startOf is the call's start time, or now.
func startOf(c *pipeline.Call) time.Time {
	if c.Start.IsZero() {
		return time.Now()
	}
	return c.Start
}
