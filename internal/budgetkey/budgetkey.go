// Package budgetkey is what both planes must compute alike for budgets:
// which key of a budget a call counts under and which calendar window it
// falls in. Data planes use it to reserve a call against the key's slice;
// the control plane's budget audit consumer uses it to fold the call's
// audit record into the key's durable usage. Were the two to differ, the
// usage would be counted under keys nobody holds slices of.
package budgetkey

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"
	_ "time/tzdata" // budgets name IANA zones; not every host has them

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// MaxKeyBytes bounds a key (a user's name is the caller's).
const MaxKeyBytes = 512

// Call is what a budget matches a call by.
type Call struct {
	Agent, Team string
	// User is "<identity source>/<name>" of a verified user; empty without.
	User string
	// Upstream is the upstream's name, Target the name the agent called
	// (a tool's "<prefix>__<tool>", a model's "<prefix>/<model>").
	Upstream, Target string
}

// Key reports whether b counts c, and under which key ("agent a1",
// "team ops", "user src/name", "everyone"). A key that would be longer
// than MaxKeyBytes names its value by its SHA-256 instead ("user
// sha256:…"), so a caller cannot escape a budget with a long name.
func Key(b *configv1.Budget, c Call) (string, bool) {
	if !matches(b.GetAgents(), c.Agent) || !matches(b.GetTeams(), c.Team) ||
		!matches(b.GetUpstreams(), c.Upstream) || !matches(b.GetModels(), c.Target) {
		return "", false
	}
	var kind, value string
	switch b.GetScope() {
	case configv1.BudgetScope_BUDGET_SCOPE_AGENT:
		kind, value = "agent ", c.Agent
	case configv1.BudgetScope_BUDGET_SCOPE_TEAM:
		kind, value = "team ", c.Team
	case configv1.BudgetScope_BUDGET_SCOPE_USER:
		kind, value = "user ", c.User
	case configv1.BudgetScope_BUDGET_SCOPE_GLOBAL:
		return "everyone", true
	default:
		return "", false
	}
	if value == "" {
		return "", false
	}
	if len(kind)+len(value) > MaxKeyBytes {
		sum := sha256.Sum256([]byte(value))
		value = "sha256:" + hex.EncodeToString(sum[:])
	}
	return kind + value, true
}

func matches(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }

// Location is a budget's time zone; UTC when empty or unknown (the control
// plane checks zones when budgets are written).
func Location(tz string) *time.Location {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Window is the calendar window of kind w that t falls in, aligned in loc.
func Window(w configv1.BudgetWindow, t time.Time, loc *time.Location) (start, end time.Time) {
	t = t.In(loc)
	y, mo, d := t.Date()
	switch w {
	case configv1.BudgetWindow_BUDGET_WINDOW_MINUTE:
		start = t.Truncate(time.Minute)
		return start, start.Add(time.Minute)
	case configv1.BudgetWindow_BUDGET_WINDOW_HOUR:
		start = time.Date(y, mo, d, t.Hour(), 0, 0, 0, loc)
		return start, start.Add(time.Hour)
	case configv1.BudgetWindow_BUDGET_WINDOW_DAY:
		start = time.Date(y, mo, d, 0, 0, 0, 0, loc)
		return start, time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	}
	start = time.Date(y, mo, 1, 0, 0, 0, 0, loc)
	return start, time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
}

// CostNanos is a budget's cost limit in nano-units (the budget holds
// micro-units), saturating.
func CostNanos(b *configv1.Budget) int64 {
	m := b.GetMaxCostMicros()
	if m > (1<<63-1)/1000 {
		return 1<<63 - 1
	}
	return m * 1000
}
