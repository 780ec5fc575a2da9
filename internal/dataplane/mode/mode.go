// Package mode decides the data plane's serving mode from how recently it
// heard from the control plane and where its snapshot came from.
//
// The rules, evaluated at the moment Mode is called:
//
//   - STARTING while no snapshot is in service.
//   - The age of what the data plane knows is now minus the last contact
//     with the control plane (a snapshot or a heartbeat). Before any
//     contact — a cold start from the last-known-good snapshot on disk —
//     it is now minus that snapshot's version time, the latest moment the
//     snapshot is known to have been current. A zero version time counts
//     as infinitely old.
//   - STALE when the age reaches maxStale.
//   - DEGRADED when the age reaches degradedAfter, or after a cold start
//     from disk until the first contact: a snapshot read from disk may be
//     outdated however young it looks.
//   - NORMAL otherwise.
package mode

import (
	"math"
	"sync"
	"time"

	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Tracker tracks contact and snapshot loads and answers the current mode.
// It is safe for concurrent use.
type Tracker struct {
	degradedAfter time.Duration
	maxStale      time.Duration
	now           func() time.Time

	mu          sync.Mutex
	loaded      bool
	coldStart   bool // loaded from disk, no contact since
	versionTime time.Time
	lastContact time.Time
}

// NewTracker returns a tracker in STARTING mode. A non-positive
// degradedAfter or maxStale disables that threshold; now defaults to
// time.Now.
func NewTracker(degradedAfter, maxStale time.Duration, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{degradedAfter: degradedAfter, maxStale: maxStale, now: now}
}

// Contact records that the control plane was heard from.
func (t *Tracker) Contact() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastContact = now
	t.coldStart = false
}

// Loaded records that a snapshot with versionTime is now in service;
// fromDisk is true when it came from the last-known-good copy rather than
// from the control plane.
func (t *Tracker) Loaded(versionTime time.Time, fromDisk bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loaded = true
	t.versionTime = versionTime
	t.coldStart = fromDisk && t.lastContact.IsZero()
}

// Mode is the serving mode now.
func (t *Tracker) Mode() configsyncv1.Mode {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded {
		return configsyncv1.Mode_MODE_STARTING
	}
	age := t.age(now)
	switch {
	case t.maxStale > 0 && age >= t.maxStale:
		return configsyncv1.Mode_MODE_STALE
	case t.coldStart, t.degradedAfter > 0 && age >= t.degradedAfter:
		return configsyncv1.Mode_MODE_DEGRADED
	default:
		return configsyncv1.Mode_MODE_NORMAL
	}
}

// age is how old the data plane's knowledge is at now. t.mu is held.
func (t *Tracker) age(now time.Time) time.Duration {
	since := t.lastContact
	if since.IsZero() {
		since = t.versionTime
	}
	if since.IsZero() {
		return math.MaxInt64
	}
	return now.Sub(since)
}

// LastContact is when the control plane was last heard from (zero if
// never).
func (t *Tracker) LastContact() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastContact
}
