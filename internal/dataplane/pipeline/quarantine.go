package pipeline

import "context"

// Quarantine knows which pinned tools are quarantined: their upstream's
// live definition differs from the approved one, or the upstream no
// longer lists them (a "rug pull"). Gate refuses calls to them and the
// protocol adapters leave them out of tool lists. Implementations must be
// safe for concurrent use.
type Quarantine interface {
	// Quarantined reports whether t is quarantined and, if so, a message
	// safe for callers saying why and what an operator must do. It answers
	// from the last check of t's upstream and never waits for the
	// upstream.
	Quarantined(ctx context.Context, t Tool) (message string, quarantined bool)
	// Refresh re-checks those of the named upstreams whose last check is
	// older than the implementation's listing interval, and waits for the
	// checks for a bounded time (and no longer than ctx), so that a
	// tools/list sees a change within one call. An upstream that cannot
	// be reached keeps its previous verdict.
	Refresh(ctx context.Context, upstreams []string)
}
