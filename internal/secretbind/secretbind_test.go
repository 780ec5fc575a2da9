package secretbind_test

import (
	"slices"
	"strings"
	"testing"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{name: "name", in: "api.github.com", want: "api.github.com"},
		{name: "upper case and trailing dot", in: "API.GitHub.com.", want: "api.github.com"},
		{name: "name and port", in: "Mcp.Example.com:8443", want: "mcp.example.com:8443"},
		{name: "ipv4", in: "127.0.0.1", want: "127.0.0.1"},
		{name: "ipv4 and port", in: "127.0.0.1:7450", want: "127.0.0.1:7450"},
		{name: "ipv6", in: "::1", want: "::1"},
		{name: "ipv6 long form", in: "0:0:0:0:0:0:0:1", want: "::1"},
		{name: "ipv6 in brackets", in: "[::1]", want: "::1"},
		{name: "ipv6 and port", in: "[0::1]:443", want: "[::1]:443"},
		{name: "ipv4-mapped", in: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{name: "underscore", in: "svc_a.internal", want: "svc_a.internal"},
		{name: "empty", in: "", err: "empty host"},
		{name: "url", in: "https://api.github.com", err: "not a URL"},
		{name: "path", in: "api.github.com/x", err: "not a URL"},
		{name: "userinfo", in: "u@api.github.com", err: "not a URL"},
		{name: "wildcard", in: "*.github.com", err: "wildcards"},
		{name: "port zero", in: "example.com:0", err: "1 to 65535"},
		{name: "port too big", in: "example.com:65536", err: "1 to 65535"},
		{name: "port not a number", in: "example.com:https", err: "1 to 65535"},
		{name: "empty port", in: "example.com:", err: "1 to 65535"},
		{name: "leading zero port", in: "example.com:0443", err: "1 to 65535"},
		{name: "empty label", in: "a..b", err: "not a valid host name"},
		{name: "unicode", in: "bücher.example", err: "xn--"},
		{name: "zone", in: "fe80::1%eth0", err: "zone"},
		{name: "brackets around a name", in: "[example.com]:80", err: "brackets"},
		{name: "long label", in: strings.Repeat("a", 64) + ".com", err: "1 to 63"},
		{name: "too long", in: strings.Repeat("a.", 140), err: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secretbind.Canonical(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Canonical(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Canonical(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	got, err := secretbind.Normalize([]string{"B.example", " a.example ", "b.example", "127.0.0.1:80"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:80", "a.example", "b.example"}; !slices.Equal(got, want) {
		t.Fatalf("Normalize = %v, want %v", got, want)
	}
	if !secretbind.IsCanonical(got) || secretbind.IsCanonical([]string{"b.example", "a.example"}) {
		t.Error("IsCanonical disagrees with Normalize")
	}
	many := make([]string, secretbind.MaxHosts+1)
	for i := range many {
		many[i] = "h" + strings.Repeat("x", i+1) + ".example"
	}
	if _, err := secretbind.Normalize(many); err == nil {
		t.Error("more than MaxHosts accepted")
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string
		url   string
		want  bool
	}{
		{"same host any port", []string{"api.github.com"}, "https://api.github.com/mcp", true},
		{"same host other port", []string{"api.github.com"}, "https://api.github.com:8443/mcp", true},
		{"case and trailing dot in the URL", []string{"api.github.com"}, "https://API.GITHUB.COM./mcp", true},
		{"other host", []string{"api.github.com"}, "https://evil.example/mcp", false},
		{"suffix is not a match", []string{"github.com"}, "https://api.github.com/mcp", false},
		{"lookalike suffix", []string{"github.com"}, "https://github.com.evil.example/", false},
		{"port matches", []string{"127.0.0.1:7450"}, "http://127.0.0.1:7450/mcp", true},
		{"port differs", []string{"127.0.0.1:7450"}, "http://127.0.0.1:7451/mcp", false},
		{"default https port", []string{"api.example:443"}, "https://api.example/mcp", true},
		{"default http port", []string{"api.example:80"}, "http://api.example/mcp", true},
		{"default port differs by scheme", []string{"api.example:443"}, "http://api.example/mcp", false},
		{"ipv6", []string{"::1"}, "http://[::1]:9000/mcp", true},
		{"ipv6 with port", []string{"[::1]:9000"}, "http://[0:0::1]:9000/mcp", true},
		{"loopback v4 is not localhost", []string{"localhost"}, "http://127.0.0.1/mcp", false},
		{"empty binding", nil, "https://api.github.com/", false},
		{"userinfo", []string{"api.github.com"}, "https://u:p@api.github.com/", false},
		{"other scheme", []string{"api.github.com"}, "ftp://api.github.com/", false},
		{"not a URL", []string{"api.github.com"}, "://", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := secretbind.AllowsURL(tt.hosts, tt.url); got != tt.want {
				t.Errorf("AllowsURL(%v, %q) = %v, want %v", tt.hosts, tt.url, got, tt.want)
			}
		})
	}
}

func TestEntry(t *testing.T) {
	for in, want := range map[string]string{
		"https://API.example/mcp":    "api.example:443",
		"http://api.example/mcp":     "api.example:80",
		"http://127.0.0.1:7450/mcp":  "127.0.0.1:7450",
		"http://[::1]:80/":           "[::1]:80",
		"https://api.example:443/x?": "api.example:443",
	} {
		if got, err := secretbind.Entry(in); err != nil || got != want {
			t.Errorf("Entry(%q) = %q, %v; want %q", in, got, err, want)
		}
		if !secretbind.AllowsURL([]string{want}, in) {
			t.Errorf("the entry of %q does not allow it", in)
		}
	}
	for _, in := range []string{"https://u:p@x.example/", "mailto:a@b", "https:///nohost"} {
		if got, err := secretbind.Entry(in); err == nil {
			t.Errorf("Entry(%q) = %q, want an error", in, got)
		}
	}
}

func TestUseAndImplicit(t *testing.T) {
	bearer := func(name, url, secret string) *configv1.Upstream {
		return &configv1.Upstream{Meta: &configv1.ResourceMeta{Name: name}, Url: url,
			Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: secret}}}}
	}
	oauth := &configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "o"}, Url: "https://api.example/mcp",
		Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{
			OauthClientCredentials: &configv1.OAuthClientCredentials{TokenUrl: "https://idp.example/token", ClientSecret: "cs"}}}}
	ups := []*configv1.Upstream{
		bearer("a", "https://b.example/mcp", "tok"),
		bearer("b", "http://127.0.0.1:7450/mcp", "tok"),
		bearer("c", "https://b.example/other", "tok"),
		bearer("d", "https://elsewhere.example/", "other"),
		oauth,
		{Meta: &configv1.ResourceMeta{Name: "none"}, Url: "https://none.example/"},
	}
	each := func(yield func(*configv1.Upstream) bool) {
		for _, u := range ups {
			if !yield(u) {
				return
			}
		}
	}
	if got, want := secretbind.Implicit("tok", each), []string{"127.0.0.1:7450", "b.example:443"}; !slices.Equal(got, want) {
		t.Errorf("Implicit(tok) = %v, want %v", got, want)
	}
	if got, want := secretbind.Implicit("cs", each), []string{"api.example:443", "idp.example:443"}; !slices.Equal(got, want) {
		t.Errorf("Implicit(cs) = %v, want %v (the token URL and the upstream)", got, want)
	}
	if got := secretbind.Implicit("unused", each); len(got) != 0 {
		t.Errorf("Implicit(unused) = %v, want none", got)
	}
	all := secretbind.ImplicitAll(each)
	if len(all) != 3 {
		t.Errorf("ImplicitAll = %v, want the secrets tok, other and cs", all)
	}
	for name, hosts := range all {
		if one := secretbind.Implicit(name, each); !slices.Equal(one, hosts) {
			t.Errorf("ImplicitAll[%s] = %v, Implicit = %v", name, hosts, one)
		}
	}
	use, ok := secretbind.UseOf(oauth)
	if !ok || use.Secret != "cs" {
		t.Fatalf("UseOf(oauth) = %v, %v", use, ok)
	}
	if out := secretbind.Outside([]string{"idp.example"}, use); out != "https://api.example/mcp" {
		t.Errorf("Outside = %q, want the upstream URL (the access token goes there)", out)
	}
	if out := secretbind.Outside([]string{"idp.example", "api.example"}, use); out != "" {
		t.Errorf("Outside = %q, want none", out)
	}
	if _, ok := secretbind.UseOf(ups[5]); ok {
		t.Error("an upstream without a credential has a use")
	}
}
