package config

import (
	"errors"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// checkLimits holds every resource of the snapshot to the limits table the
// control plane enforces on writes (package limits) — sizes, counts, and
// the nesting of Cedar sources and JSON documents — before any parser sees
// them. A snapshot is bytes from outside: a control plane of another
// version, or a tampered last-known-good file, may carry what this data
// plane's parsers must never be handed. It reports whether the snapshot is
// within the limits; when it is not, Compile refuses it without compiling
// anything.
func (b *builder) checkLimits() bool {
	s := b.snap
	over := func(kind, name string, err error) {
		if err != nil {
			b.problems.add("%s %q is over a limit: %v", kind, truncate(name, maxSegmentBytes), err)
		}
	}
	if len(s.GetClusterId()) > limits.ClusterID {
		b.problems.add("the cluster id is longer than %d bytes", limits.ClusterID)
	}
	if len(s.GetClusterCaPem()) > limits.CAPEM {
		b.problems.add("the cluster CA is larger than %d bytes", limits.CAPEM)
	}
	if len(s.GetFreeze().GetReason()) > limits.FreezeReason {
		b.problems.add("the freeze reason is longer than %d bytes", limits.FreezeReason)
	}
	for _, sv := range s.GetSecrets() {
		if len(sv.GetName()) > limits.Name || len(sv.GetValue()) > limits.SecretValue {
			b.problems.add("secret %q is over a limit: a name of at most %d bytes and a value of at most %d", truncate(sv.GetName(), maxSegmentBytes), limits.Name, limits.SecretValue)
		}
	}
	for _, a := range s.GetAgents() {
		over("agent", a.GetMeta().GetName(), limits.Agent(a))
	}
	for _, u := range s.GetUpstreams() {
		over("upstream", u.GetMeta().GetName(), limits.Upstream(u))
	}
	for _, p := range s.GetToolPins() {
		over("tool pin", pinName(p), limits.ToolPin(p))
	}
	for _, p := range s.GetPolicySets() {
		var le *limits.Error
		if errors.As(limits.PolicySet(p), &le) {
			file := p.GetFilename()
			if file == "" {
				file = p.GetMeta().GetName() + ".cedar"
			}
			b.problems.add("policy set %q is over a limit: %s", truncate(p.GetMeta().GetName(), maxSegmentBytes), le.In(truncate(file, maxSegmentBytes)))
		}
	}
	if ro := s.GetRollout(); ro != nil {
		var le *limits.Error
		switch {
		case len(ro.GetId()) > limits.Name:
			b.problems.add("the rollout id is longer than %d bytes", limits.Name)
		case ro.GetCanaryBasisPoints() > 10000:
			b.problems.add("rollout %q: the canary share is over 10,000 basis points", truncate(ro.GetId(), maxSegmentBytes))
		case errors.As(limits.PolicySet(ro.GetCandidate()), &le):
			b.problems.add("rollout %q: the candidate is over a limit: %s", truncate(ro.GetId(), maxSegmentBytes), le.In(truncate(ro.GetCandidate().GetFilename(), maxSegmentBytes)))
		}
	}
	for _, i := range s.GetIdentitySources() {
		over("identity source", i.GetMeta().GetName(), limits.IdentitySource(i))
	}
	for _, l := range s.GetValueLists() {
		over("value list", l.GetMeta().GetName(), limits.ValueList(l))
	}
	for _, l := range s.GetListLearnings() {
		over("learned list", l.GetMeta().GetName(), limits.ListLearning(l))
	}
	for _, p := range s.GetModelPrices() {
		over("model price", p.GetMeta().GetName(), limits.ModelPrice(p))
	}
	for _, bg := range s.GetBudgets() {
		over("budget", bg.GetMeta().GetName(), limits.Budget(bg))
	}
	for _, rl := range s.GetRateLimits() {
		over("rate limit", rl.GetMeta().GetName(), limits.RateLimit(rl))
	}
	if len(s.GetSettings()) > maxSettings {
		b.problems.add("the snapshot carries %d settings, more than %d", len(s.GetSettings()), maxSettings)
	}
	for _, st := range s.GetSettings() {
		over("setting", st.GetMeta().GetName(), limits.Setting(st))
	}
	for _, r := range s.GetInspectionRules() {
		over("inspection rule", r.GetMeta().GetName(), limits.InspectionRule(r))
	}
	return !b.problems.any()
}

// maxSettings bounds the settings of a snapshot: far more keys than any
// release knows.
const maxSettings = 1024

// maxSegmentBytes bounds a caller-controlled name quoted in a problem.
const maxSegmentBytes = 64

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

// pinName names a tool pin in a problem.
func pinName(p *configv1.ToolPin) string {
	if n := p.GetMeta().GetName(); n != "" {
		return n
	}
	return p.GetUpstream() + "/" + p.GetTool()
}
