// Package toolversion is what both planes must agree on about the versions
// of a tool pin: which version is the default, which version an agent is
// served (its own assignment, else its team's, else the default), which
// versions are in use (and so type the tool's Cedar arguments), and where
// a deprecated version stands against its sunset.
package toolversion

import (
	"slices"
	"time"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Find returns version n of p, nil when p has none.
func Find(p *configv1.ToolPin, n int64) *configv1.ToolVersion {
	for _, v := range p.GetVersions() {
		if v.GetVersion() == n {
			return v
		}
	}
	return nil
}

// Default returns the version served to agents no assignment names:
// active_version, or the newest when it is 0. Nil when p has no version,
// or active_version names one it does not have.
func Default(p *configv1.ToolPin) *configv1.ToolVersion {
	if n := p.GetActiveVersion(); n != 0 {
		return Find(p, n)
	}
	var newest *configv1.ToolVersion
	for _, v := range p.GetVersions() {
		if newest == nil || v.GetVersion() > newest.GetVersion() {
			newest = v
		}
	}
	return newest
}

// Source says why an agent is served a version.
type Source int

// Sources, from the strongest.
const (
	// SourceDefault: no assignment names the agent or its team.
	SourceDefault Source = iota
	// SourceTeam: an assignment names the agent's team.
	SourceTeam
	// SourceAgent: an assignment names the agent.
	SourceAgent
)

func (s Source) String() string {
	switch s {
	case SourceTeam:
		return "team"
	case SourceAgent:
		return "agent"
	}
	return "default"
}

// For returns the version agent (in team, "" for none) is served: its own
// assignment, else its team's, else the default. An assignment naming a
// version p does not have is ignored (the control plane never stores
// one). Nil when p has no default either.
func For(p *configv1.ToolPin, agent, team string) (*configv1.ToolVersion, Source) {
	var byTeam *configv1.ToolVersion
	for _, a := range p.GetAssignments() {
		switch {
		case agent != "" && a.GetAgent() == agent:
			if v := Find(p, a.GetVersion()); v != nil {
				return v, SourceAgent
			}
		case team != "" && a.GetTeam() == team && byTeam == nil:
			byTeam = Find(p, a.GetVersion())
		}
	}
	if byTeam != nil {
		return byTeam, SourceTeam
	}
	return Default(p), SourceDefault
}

// InUse returns the versions agents can be served: the default and every
// assigned version p has, in version order, once each.
func InUse(p *configv1.ToolPin) []*configv1.ToolVersion {
	var out []*configv1.ToolVersion
	add := func(v *configv1.ToolVersion) {
		if v != nil && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	add(Default(p))
	for _, a := range p.GetAssignments() {
		add(Find(p, a.GetVersion()))
	}
	slices.SortFunc(out, func(a, b *configv1.ToolVersion) int { return compare(a.GetVersion(), b.GetVersion()) })
	return out
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Deprecated reports whether v was deprecated.
func Deprecated(v *configv1.ToolVersion) bool {
	return v.GetDeprecateTime() != nil && v.GetSunsetTime() != nil
}

// Retired reports whether v was deprecated and its sunset has come at
// now: calls on it are refused from then on.
func Retired(v *configv1.ToolVersion, now time.Time) bool {
	return Deprecated(v) && !now.Before(v.GetSunsetTime().AsTime())
}

// Replacement returns the version callers of v should move to: the
// default when that is another version that is not deprecated, else the
// newest version that is not deprecated; 0 when there is none.
func Replacement(p *configv1.ToolPin, v *configv1.ToolVersion) int64 {
	if d := Default(p); d != nil && d.GetVersion() != v.GetVersion() && !Deprecated(d) {
		return d.GetVersion()
	}
	var best int64
	for _, o := range p.GetVersions() {
		if o.GetVersion() != v.GetVersion() && !Deprecated(o) && o.GetVersion() > best {
			best = o.GetVersion()
		}
	}
	return best
}

// Users returns the assignments of p that put someone on version n, and
// whether n is the default.
func Users(p *configv1.ToolPin, n int64) (assignments []*configv1.ToolAssignment, isDefault bool) {
	for _, a := range p.GetAssignments() {
		if a.GetVersion() == n {
			assignments = append(assignments, a)
		}
	}
	return assignments, Default(p).GetVersion() == n && n != 0
}
