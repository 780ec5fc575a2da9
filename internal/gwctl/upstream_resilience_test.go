package gwctl_test

import (
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

func TestUpstreamAddResilienceFlags(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	mustSucceed(t, gw(t, "--server", c.URLs(), "upstream", "add", "gh", "--url", "https://mcp.example.com",
		"--max-retries", "0", "--breaker-failures", "3", "--breaker-open", "2s", "--max-concurrency", "8"))
	up := c.Upstream("gh")
	r := up.GetResilience()
	if r.MaxRetries == nil || r.GetMaxRetries() != 0 || r.GetBreakerFailures() != 3 || r.GetBreakerOpen().AsDuration() != 2*time.Second {
		t.Errorf("resilience = %v, want max_retries 0 (set), breaker 3 failures, open 2s", r)
	}
	if n := up.GetLimits().GetMaxConcurrency(); n != 8 {
		t.Errorf("max_concurrency = %d, want 8", n)
	}
	mustSucceed(t, gw(t, "--server", c.URLs(), "upstream", "add", "gl", "--url", "https://gl.example.com"))
	if up := c.Upstream("gl"); up.GetResilience() != nil || up.GetLimits() != nil {
		t.Errorf("defaults: resilience %v limits %v; want both unset", up.GetResilience(), up.GetLimits())
	}
}
