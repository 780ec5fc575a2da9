package resource

import (
	"slices"
	"unicode/utf8"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func validateRateLimit(r *configv1.RateLimit) error {
	if err := ValidateName("meta.name", r.GetMeta().GetName()); err != nil {
		return err
	}
	for i, k := range r.GetKey() {
		f := "key[" + itoa(i) + "]"
		if _, ok := configv1.RateLimitKey_name[int32(k)]; !ok || k == configv1.RateLimitKey_RATE_LIMIT_KEY_UNSPECIFIED {
			return invalid(f, "must be agent, team, user, upstream or tool")
		}
		if slices.Contains(r.GetKey()[:i], k) {
			return invalid(f, "%s is given twice", k)
		}
	}
	if r.GetRate() < 0 || r.GetBurst() < 0 || r.GetMaxInFlight() < 0 {
		return invalid("rate", "rate, burst and max_in_flight cannot be negative")
	}
	if r.GetRate() == 0 && r.GetMaxInFlight() == 0 {
		return invalid("rate", "set a rate (such as 100/min), a max_in_flight, or both")
	}
	if r.GetRate() == 0 && r.GetBurst() != 0 {
		return invalid("burst", "a burst needs a rate")
	}
	switch r.GetPeriod() {
	case configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_SECOND, configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE, configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_HOUR:
	case configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_UNSPECIFIED:
		if r.GetRate() != 0 {
			return invalid("period", "is required with a rate: second, minute or hour")
		}
	default:
		return invalid("period", "must be second, minute or hour")
	}
	switch r.GetMode() {
	case configv1.RateLimitMode_RATE_LIMIT_MODE_UNSPECIFIED, configv1.RateLimitMode_RATE_LIMIT_MODE_ENFORCE, configv1.RateLimitMode_RATE_LIMIT_MODE_SHADOW:
	default:
		return invalid("mode", "must be enforce or shadow")
	}
	for _, l := range []struct {
		field  string
		values []string
		check  func(string, string) error
	}{
		{"agents", r.GetAgents(), ValidateName}, {"teams", r.GetTeams(), ValidateName},
		{"upstreams", r.GetUpstreams(), ValidateName}, {"tools", r.GetTools(), validateTargetName},
	} {
		for i, v := range l.values {
			f := l.field + "[" + itoa(i) + "]"
			if err := l.check(f, v); err != nil {
				return err
			}
			if slices.Contains(l.values[:i], v) {
				return invalid(f, "%q is given twice", v)
			}
		}
	}
	return nil
}

// validateTargetName checks a tool or model as agents name it: printable
// UTF-8 without spaces.
func validateTargetName(field, name string) error {
	if name == "" || !utf8.ValidString(name) {
		return invalid(field, "must be a tool name as agents call it (<prefix>__<tool>) or a model name")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return invalid(field, "%q is not a tool or model name: no spaces or control characters", name)
		}
	}
	return nil
}
