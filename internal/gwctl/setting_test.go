package gwctl_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

func TestSettingCommands(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	server := []string{"--server", c.URLs()}
	const key = setting.MCPAllowedOrigins

	r := gw(t, append(server, "settings", "get")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, key) || !strings.Contains(r.stdout, "(none)") || !strings.Contains(r.stdout, "default") {
		t.Errorf("get (all) before any set:\n%s", r.stdout)
	}

	// Values as several arguments, comma-separated, or both; stored in
	// canonical form.
	r = gw(t, append(server, "settings", "set", key, "HTTPS://App.example:443,http://localhost:3000", "https://b.example")...)
	mustSucceed(t, r)
	want := []string{"http://localhost:3000", "https://app.example", "https://b.example"}
	if got := c.Setting(key).GetValues(); !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
	if !strings.Contains(r.stdout, key+" = http://localhost:3000,https://app.example,https://b.example") {
		t.Errorf("set output: %q", r.stdout)
	}
	r = gw(t, append(server, "settings", "get", key)...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "https://app.example") || !strings.Contains(r.stdout, "set by tok1") {
		t.Errorf("get %s:\n%s", key, r.stdout)
	}
	r = gw(t, append(server, "settings", "get", key, "-o", "json")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, `"values"`) || !strings.Contains(r.stdout, `"https://b.example"`) {
		t.Errorf("json:\n%s", r.stdout)
	}

	// The server's refusals name what to do.
	r = gw(t, append(server, "settings", "set", key, "https://app.example/path")...)
	if r.code != 1 || !strings.Contains(r.stderr, "without path") {
		t.Errorf("bad origin: exit %d, stderr %q", r.code, r.stderr)
	}
	r = gw(t, append(server, "settings", "set", "mcp.allowed-origin", "https://a.example")...)
	if r.code != 1 || !strings.Contains(r.stderr, "unknown setting") || !strings.Contains(r.stderr, key) {
		t.Errorf("unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := gw(t, append(server, "settings", "set")...); r.code != 2 {
		t.Errorf("set without a name: exit %d, want 2 (usage)", r.code)
	}

	mustSucceed(t, gw(t, append(server, "settings", "reset", key)...))
	if got := c.Setting(key); got != nil {
		t.Errorf("after reset: %v", got)
	}
}
