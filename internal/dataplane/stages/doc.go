// Package stages holds the data plane's cross-cutting pipeline stages:
// Audit, Authenticate, Gate, Authorize and Validate. Each implements
// [pipeline.Stage], sees only the protocol-neutral [*pipeline.Call], and is
// safe for concurrent use.
//
// The order matters and [Default] returns it:
//
//	Audit         records every call, whatever later stages decide
//	Authenticate  API key or agent JWT → agent; user token → user
//	Gate          mode and emergency brake, tool lookup
//	Authorize     Cedar policies
//	Validate      arguments against the pinned input schema
//
// Audit comes first so that refusals by every later stage are recorded.
// Gate runs before Authorize so that a stale or degraded data plane refuses
// without evaluating policies it may no longer be entitled to apply.
// Authorize runs before Validate so that a caller learns nothing about a
// tool's input schema unless policy lets it call the tool; Authorize does
// not depend on Validate, because the configuration converts arguments for
// Cedar exactly as the schema types them and denies what does not fit.
package stages

import (
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Default returns the stages in the recommended order: Audit (writing to
// w, naming this data plane dataplane, timing with now), Authenticate,
// Gate, Authorize, Validate. now may be nil for time.Now.
func Default(w AuditWriter, dataplane string, now func() time.Time) []pipeline.Stage {
	return WithAudit(Audit{Writer: w, Dataplane: dataplane, Now: now})
}

// WithAudit returns the stages of [Default] with a as the Audit stage.
func WithAudit(a Audit) []pipeline.Stage {
	return []pipeline.Stage{
		a,
		Authenticate{},
		Gate{},
		Authorize{},
		Validate{},
	}
}

// Messages shared by stages. They are sent to callers: each says what
// happened and what to do.
const (
	msgNoConfig = "the data plane has no configuration yet; retry shortly"
	msgStale    = "configuration is older than --max-stale; every call is refused until the control plane is back"
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
