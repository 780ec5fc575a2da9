package limits

import (
	"fmt"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Rate limits.
const (
	// RateLimitMatch bounds each of a rate limit's match lists.
	RateLimitMatch = 64
	// RateLimitKeyParts bounds the parts of a rate limit's key.
	RateLimitKeyParts = 5
	// RateLimitRate bounds a rate limit's rate (calls per period) and its
	// in-flight limit.
	RateLimitRate = 1_000_000_000
	// RateLimitBurst bounds a rate limit's burst.
	RateLimitBurst = 1_000_000
)

// RateLimit checks a rate limit.
func RateLimit(r *configv1.RateLimit) error {
	if err := Meta(r.GetMeta()); err != nil {
		return err
	}
	if len(r.GetKey()) > RateLimitKeyParts {
		return exceeded("key", "at most %d parts", RateLimitKeyParts)
	}
	if r.GetRate() > RateLimitRate {
		return exceeded("rate", "at most %d calls per period", RateLimitRate)
	}
	if r.GetMaxInFlight() > RateLimitRate {
		return exceeded("max_in_flight", "at most %d", RateLimitRate)
	}
	if r.GetBurst() > RateLimitBurst {
		return exceeded("burst", "at most %d", RateLimitBurst)
	}
	for _, l := range []struct {
		field  string
		values []string
	}{{"agents", r.GetAgents()}, {"teams", r.GetTeams()}, {"upstreams", r.GetUpstreams()}, {"tools", r.GetTools()}} {
		if len(l.values) > RateLimitMatch {
			return exceeded(l.field, "at most %d entries", RateLimitMatch)
		}
		for i, v := range l.values {
			if len(v) > Name {
				return exceeded(fmt.Sprintf("%s[%d]", l.field, i), "at most %d bytes", Name)
			}
		}
	}
	return nil
}
