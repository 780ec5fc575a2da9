// Package access gives the control plane the gateway's policy engine
// (internal/authz) over its own state, for the AccessService and any other
// caller that must decide as the data planes do (staged rollout, replay).
//
// [Engines] compiles the authorization snapshot of a state — the same
// configuration data planes compile, without secrets (see
// configsync.AuthorizationSnapshot) — and keeps the engine of the newest
// configuration version it compiled, so questions about an unchanged
// configuration do not compile it again.
package access

import (
	"fmt"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
)

// Engines compiles and caches policy engines by configuration version. It
// is safe for concurrent use; one compilation runs at a time, so a burst of
// questions after a write compiles the new version once.
type Engines struct {
	mu     sync.Mutex
	latest *authz.Engine
	// compiles counts compilations (for tests).
	compiles int
}

// For returns the engine of st's configuration version, compiling it
// unless it is the version already held. An engine of an older version
// than the one held (a stale read) is compiled but not kept. The error is
// an *authz.Error when the configuration does not compile, which the
// control plane's own validation should make impossible.
func (e *Engines) For(st *state.State) (*authz.Engine, error) {
	version := st.ConfigVersion()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.latest != nil && e.latest.Version() == version {
		return e.latest, nil
	}
	eng, err := authz.Compile(configsync.AuthorizationSnapshot(st))
	if err != nil {
		return nil, fmt.Errorf("compile configuration version %d for authorization: %w", version, err)
	}
	e.compiles++
	if e.latest == nil || version > e.latest.Version() {
		e.latest = eng
	}
	return eng, nil
}

// Compiles reports how many engines e has compiled.
func (e *Engines) Compiles() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.compiles
}
