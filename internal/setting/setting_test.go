package setting_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

func TestCanonicalOrigin(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{name: "https", in: "https://app.example", want: "https://app.example"},
		{name: "upper case", in: "HTTPS://App.Example", want: "https://app.example"},
		{name: "default https port", in: "https://app.example:443", want: "https://app.example"},
		{name: "default http port", in: "http://app.example:80", want: "http://app.example"},
		{name: "other port", in: "http://localhost:3000", want: "http://localhost:3000"},
		{name: "https on 80 keeps it", in: "https://app.example:80", want: "https://app.example:80"},
		{name: "trailing slash", in: "https://app.example/", want: "https://app.example"},
		{name: "ipv4", in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{name: "ipv6", in: "http://[::1]:8080", want: "http://[::1]:8080"},
		{name: "punycode", in: "https://xn--bcher-kva.example", want: "https://xn--bcher-kva.example"},
		{name: "empty", in: "", err: "empty"},
		{name: "null", in: "null", err: "scheme"},
		{name: "wildcard", in: "https://*.example", err: "wildcards"},
		{name: "path", in: "https://app.example/x", err: "without path"},
		{name: "query", in: "https://app.example?x", err: "without path"},
		{name: "empty query", in: "https://app.example?", err: "without path"},
		{name: "fragment", in: "https://app.example#x", err: "without path"},
		{name: "user", in: "https://u@app.example", err: "without path"},
		{name: "ftp", in: "ftp://app.example", err: "scheme"},
		{name: "no scheme", in: "app.example", err: "scheme"},
		{name: "no host", in: "https://", err: "no host"},
		{name: "port zero", in: "https://app.example:0", err: "port"},
		{name: "port too big", in: "https://app.example:65536", err: "port"},
		{name: "empty port", in: "https://app.example:", err: "empty port"},
		{name: "unicode host", in: "https://bücher.example", err: "xn--"},
		{name: "underscore", in: "https://a_b.example", err: "may hold only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := setting.CanonicalOrigin(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CanonicalOrigin(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CanonicalOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCanonicalAndCheck(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		values []string
		want   []string
		err    string
	}{
		{name: "sorted and canonical", key: setting.MCPAllowedOrigins, values: []string{"https://b.example", "HTTPS://A.example:443"},
			want: []string{"https://a.example", "https://b.example"}},
		{name: "empty list", key: setting.MCPAllowedOrigins, values: []string{}, want: []string{}},
		{name: "duplicate after canonical form", key: setting.MCPAllowedOrigins, values: []string{"https://a.example", "https://A.example/"}, err: "twice"},
		{name: "bad origin", key: setting.MCPAllowedOrigins, values: []string{"https://a.example/path"}, err: "without path"},
		{name: "unknown key", key: "mcp.nope", values: []string{"x"}, err: "unknown setting"},
		{name: "too many values", key: setting.MCPAllowedOrigins, values: make([]string, limits.SettingValues+1), err: "at most"},
		{name: "value too long", key: setting.MCPAllowedOrigins, values: []string{"https://" + strings.Repeat("a", limits.SettingValue)}, err: "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := setting.Canonical(tt.key, tt.values)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Canonical = %q, %v; want an error with %q", got, err, tt.err)
				}
				if err := setting.Check(tt.key, tt.values); err == nil {
					t.Errorf("Check accepted what Canonical refused")
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Canonical = %q, %v; want %q", got, err, tt.want)
			}
			if err := setting.Check(tt.key, got); err != nil {
				t.Errorf("Check(canonical) = %v", err)
			}
			if !slices.Equal(got, tt.values) {
				if err := setting.Check(tt.key, tt.values); err == nil {
					t.Errorf("Check accepted a non-canonical list %q", tt.values)
				}
			}
		})
	}
}

func TestUnknownNamesTheSettings(t *testing.T) {
	_, err := setting.Canonical("nope", nil)
	if !errors.Is(err, setting.ErrUnknown) || !strings.Contains(err.Error(), setting.MCPAllowedOrigins) {
		t.Fatalf("error %v, want ErrUnknown naming the known settings", err)
	}
}

func TestValues(t *testing.T) {
	stored := []*configv1.Setting{{Meta: &configv1.ResourceMeta{Name: setting.MCPAllowedOrigins}, Values: []string{"https://a.example"}}}
	if got := setting.Values(stored, setting.MCPAllowedOrigins); !slices.Equal(got, []string{"https://a.example"}) {
		t.Errorf("stored: %q", got)
	}
	if got := setting.Values(nil, setting.MCPAllowedOrigins); got == nil || len(got) != 0 {
		t.Errorf("default: %q, want an empty list", got)
	}
	if got := setting.Values(stored, "unknown"); got != nil {
		t.Errorf("unknown: %q", got)
	}
	for _, s := range setting.All() {
		if s.Description == "" {
			t.Errorf("%s has no description", s.Name)
		}
		if err := setting.Check(s.Name, s.Default); err != nil {
			t.Errorf("%s: the default is not canonical: %v", s.Name, err)
		}
	}
}

// FuzzCanonicalOrigin: an Origin header is bytes from outside. Whatever it
// holds, CanonicalOrigin never panics, and what it accepts is a fixed
// point: the canonical form of a canonical origin is itself.
func FuzzCanonicalOrigin(f *testing.F) {
	for _, s := range []string{"https://app.example", "HTTP://A:80/", "http://[::1]:1", "null", "https://a#", "http://a:65535", "https://%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := setting.CanonicalOrigin(raw)
		if err != nil {
			return
		}
		again, err := setting.CanonicalOrigin(got)
		if err != nil || again != got {
			t.Fatalf("CanonicalOrigin(%q) = %q, but that canonicalizes to %q, %v", raw, got, again, err)
		}
	})
}
