package upstream

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// TestSameConnection: a change of anything a connection depends on makes
// a new one; Timeout and MaxRetries, read per call, do not.
func TestSameConnection(t *testing.T) {
	base := func() Settings {
		return Settings{
			Name: "u", URL: "https://u.example/mcp", Timeout: time.Second, MaxRetries: 2,
			MaxRequest: 1 << 20, MaxResponse: 8 << 20,
			Limits: resilience.Limits{BreakerFailures: 5, BreakerOpen: time.Second, MaxConcurrency: 8},
			header: "Authorization", value: "Bearer s3cret", hosts: []string{"u.example"},
			egress: egress.Policy{Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			own:    "auto",
		}
	}
	tests := []struct {
		name   string
		change func(*Settings)
		same   bool
	}{
		{name: "nothing", change: func(*Settings) {}, same: true},
		{name: "timeout", change: func(s *Settings) { s.Timeout = time.Minute }, same: true},
		{name: "max retries", change: func(s *Settings) { s.MaxRetries = 0 }, same: true},
		{name: "url", change: func(s *Settings) { s.URL = "https://v.example/mcp" }},
		{name: "credential header", change: func(s *Settings) { s.header = "X-Key" }},
		{name: "credential value", change: func(s *Settings) { s.value = "Bearer rotated" }},
		{name: "secret's hosts", change: func(s *Settings) { s.hosts = []string{"u.example", "v.example"} }},
		{name: "allow link-local", change: func(s *Settings) { s.allowLinkLocal = true }},
		{name: "egress link-local", change: func(s *Settings) { s.egress.AllowLinkLocal = true }},
		{name: "egress allow", change: func(s *Settings) { s.egress.Allow = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")} }},
		{name: "egress deny", change: func(s *Settings) { s.egress.Deny = nil }},
		{name: "max request", change: func(s *Settings) { s.MaxRequest = 1 }},
		{name: "max response", change: func(s *Settings) { s.MaxResponse = 1 }},
		{name: "driver key", change: func(s *Settings) { s.own = "legacy" }},
		{name: "breaker failures", change: func(s *Settings) { s.Limits.BreakerFailures = 1 }},
		{name: "breaker open", change: func(s *Settings) { s.Limits.BreakerOpen = time.Minute }},
		{name: "max concurrency", change: func(s *Settings) { s.Limits.MaxConcurrency = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			tt.change(&b)
			if got := sameConnection(&a, &b); got != tt.same {
				t.Errorf("sameConnection = %v, want %v", got, tt.same)
			}
		})
	}
}

// version is one immutable configuration: the Resolver contract.
type version struct {
	u      *configv1.Upstream
	secret string
}

func (v *version) Upstream(name string) (*configv1.Upstream, bool) {
	return v.u, name == v.u.GetMeta().GetName()
}

func (v *version) Secret(string) ([]byte, []string, bool) {
	return []byte(v.secret), []string{"u.example"}, true
}

func (v *version) Egress() egress.Policy { return egress.Policy{} }

// TestResolveCache: settings are resolved once per Resolver and Upstream
// message; a new Resolver (a new configuration version) is resolved again
// even when it shares the Upstream message with the old one.
func TestResolveCache(t *testing.T) {
	u := &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "u"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "https://u.example/mcp",
		Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: "tok"}}},
	}
	c := NewConns(slog.New(slog.DiscardHandler), Driver[int]{Name: "MCP", Protocols: []configv1.Protocol{configv1.Protocol_PROTOCOL_MCP}})
	v1 := &version{u: u, secret: "one"}
	steps := []struct {
		name string
		r    Resolver
		want string
	}{
		{name: "first resolve", r: v1, want: "Bearer one"},
		{name: "cached", r: v1, want: "Bearer one"},
		{name: "new version, same message", r: &version{u: u, secret: "two"}, want: "Bearer two"},
		{name: "unknown upstream", r: &version{u: &configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "other"}}}},
	}
	for _, st := range steps {
		s, err := c.Resolve(st.r, "u")
		if st.want == "" {
			if err == nil {
				t.Errorf("%s: resolved %+v, want an error", st.name, s)
			}
			continue
		}
		if err != nil || s.value != st.want {
			t.Errorf("%s: credential %q, %v; want %q", st.name, s.value, err, st.want)
		}
	}
	if got := testing.AllocsPerRun(100, func() { _, _ = c.Resolve(v1, "u") }); got > 0 {
		t.Errorf("a cached resolve allocates %v times, want 0", got)
	}
}
