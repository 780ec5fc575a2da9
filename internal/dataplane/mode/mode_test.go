package mode_test

import (
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/mode"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

const (
	degradedAfter = 30 * time.Second
	maxStale      = 5 * time.Minute
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// step is one event in a scenario.
type step func(c *clock, tr *mode.Tracker)

func contact() step { return func(_ *clock, tr *mode.Tracker) { tr.Contact() } }

func advance(d time.Duration) step { return func(c *clock, _ *mode.Tracker) { c.advance(d) } }

// fromControlPlane loads a snapshot received now (whose version time is
// age old) and records the contact that delivered it.
func fromControlPlane(age time.Duration) step {
	return func(c *clock, tr *mode.Tracker) {
		tr.Contact()
		tr.Loaded(c.Now().Add(-age), false)
	}
}

// fromDisk loads the last-known-good snapshot whose version time is age
// old (zero age and zeroTime: a snapshot without a version time).
func fromDisk(age time.Duration, zeroTime bool) step {
	return func(c *clock, tr *mode.Tracker) {
		vt := c.Now().Add(-age)
		if zeroTime {
			vt = time.Time{}
		}
		tr.Loaded(vt, true)
	}
}

func TestMode(t *testing.T) {
	const (
		starting = configsyncv1.Mode_MODE_STARTING
		normal   = configsyncv1.Mode_MODE_NORMAL
		degraded = configsyncv1.Mode_MODE_DEGRADED
		stale    = configsyncv1.Mode_MODE_STALE
	)
	tests := []struct {
		name     string
		degraded time.Duration // default degradedAfter
		stale    time.Duration // default maxStale
		disabled bool          // both thresholds zero
		steps    []step
		want     configsyncv1.Mode
	}{
		{name: "nothing yet", want: starting},
		{name: "contact without snapshot", steps: []step{contact(), advance(time.Hour)}, want: starting},
		{name: "fresh snapshot", steps: []step{fromControlPlane(time.Hour)}, want: normal},
		{name: "old config, recent contact", steps: []step{fromControlPlane(30 * 24 * time.Hour), advance(10 * time.Second)}, want: normal},
		{name: "heartbeats keep it normal", steps: []step{fromControlPlane(0), advance(25 * time.Second), contact(), advance(25 * time.Second)}, want: normal},
		{name: "just before degraded", steps: []step{fromControlPlane(0), advance(degradedAfter - time.Nanosecond)}, want: normal},
		{name: "degraded at threshold", steps: []step{fromControlPlane(0), advance(degradedAfter)}, want: degraded},
		{name: "just before stale", steps: []step{fromControlPlane(0), advance(maxStale - time.Nanosecond)}, want: degraded},
		{name: "stale at threshold", steps: []step{fromControlPlane(0), advance(maxStale)}, want: stale},
		{name: "contact ends degraded", steps: []step{fromControlPlane(0), advance(time.Minute), contact()}, want: normal},
		{name: "contact ends stale", steps: []step{fromControlPlane(0), advance(time.Hour), contact()}, want: normal},
		{name: "cold start from disk", steps: []step{fromDisk(time.Second, false)}, want: degraded},
		{name: "cold start stays degraded", steps: []step{fromDisk(time.Second, false), advance(time.Minute)}, want: degraded},
		{name: "cold start, snapshot too old", steps: []step{fromDisk(maxStale, false)}, want: stale},
		{name: "cold start ages from version time", steps: []step{fromDisk(time.Minute, false), advance(4*time.Minute - time.Nanosecond)}, want: degraded},
		{name: "cold start turns stale", steps: []step{fromDisk(time.Minute, false), advance(4 * time.Minute)}, want: stale},
		{name: "cold start without version time", steps: []step{fromDisk(0, true)}, want: stale},
		{name: "cold start then contact", steps: []step{fromDisk(time.Hour, false), contact()}, want: normal},
		{name: "cold start, contact, silence", steps: []step{fromDisk(0, false), contact(), advance(degradedAfter)}, want: degraded},
		{name: "contact before disk load", steps: []step{contact(), fromDisk(time.Hour, false)}, want: normal},
		{name: "version time in the future", steps: []step{fromDisk(-time.Hour, false)}, want: degraded},
		{name: "custom thresholds", degraded: time.Second, stale: 2 * time.Second, steps: []step{fromControlPlane(0), advance(time.Second)}, want: degraded},
		{name: "thresholds disabled", disabled: true, steps: []step{fromControlPlane(0), advance(1000 * time.Hour)}, want: normal},
		{name: "thresholds disabled, cold start", disabled: true, steps: []step{fromDisk(1000*time.Hour, false)}, want: degraded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, s := degradedAfter, maxStale
			if tt.degraded != 0 {
				d, s = tt.degraded, tt.stale
			}
			if tt.disabled {
				d, s = 0, 0
			}
			c := &clock{now: t0}
			tr := mode.NewTracker(d, s, c.Now)
			for _, st := range tt.steps {
				st(c, tr)
			}
			if got := tr.Mode(); got != tt.want {
				t.Fatalf("Mode() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLastContact(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  time.Time
	}{
		{name: "never", want: time.Time{}},
		{name: "disk load is no contact", steps: []step{fromDisk(0, false)}, want: time.Time{}},
		{name: "latest contact", steps: []step{contact(), advance(time.Minute), contact(), advance(time.Minute)}, want: t0.Add(time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: t0}
			tr := mode.NewTracker(degradedAfter, maxStale, c.Now)
			for _, st := range tt.steps {
				st(c, tr)
			}
			if got := tr.LastContact(); !got.Equal(tt.want) {
				t.Fatalf("LastContact() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConcurrentUse gives the race detector something to see.
func TestConcurrentUse(t *testing.T) {
	tr := mode.NewTracker(degradedAfter, maxStale, nil)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				switch i {
				case 0:
					tr.Contact()
				case 1:
					tr.Loaded(time.Now(), false)
				default:
					_ = tr.Mode()
					_ = tr.LastContact()
				}
			}
		}()
	}
	wg.Wait()
	if got := tr.Mode(); got != configsyncv1.Mode_MODE_NORMAL {
		t.Fatalf("Mode() = %v, want NORMAL", got)
	}
}
