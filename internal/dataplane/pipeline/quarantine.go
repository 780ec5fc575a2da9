package pipeline

import "context"

// Quarantine knows what the upstreams of pinned tools serve now, and
// which tools callers may not use for that: a tool whose upstream lists a
// definition no version of its pin approved, or no longer lists it, is
// quarantined (a "rug pull"); a version of a tool that is not compatible
// with the definition its upstream serves is refused to the callers on
// it. Gate refuses such calls and lists leave such tools out.
// Implementations must be safe for concurrent use.
type Quarantine interface {
	// Check returns why t — one version of a pin, as a caller is served
	// it — may not be called now, nil when it may: a refusal with
	// ReasonToolVersionIncompatible or ReasonQuarantined and a message
	// safe for callers saying why and what an operator must do. It
	// answers from the last check of t's upstream and never waits for the
	// upstream.
	Check(ctx context.Context, t Tool) *Refusal
	// Refresh re-checks those of the named upstreams whose last check is
	// older than the implementation's listing interval, and waits for the
	// checks for a bounded time (and no longer than ctx), so that a
	// tools/list sees a change within one call. An upstream that cannot
	// be reached keeps its previous verdict.
	Refresh(ctx context.Context, upstreams []string)
}
