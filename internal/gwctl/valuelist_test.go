package gwctl_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

func TestValueListCommands(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	file := writeFile(t, filepath.Join(t.TempDir(), "payees.txt"), "globex\r\n\nDE89 3704 0044 0532 0130 00\n")
	server := []string{"--server", c.URLs()}
	values := func() []string { return c.ValueList("payees").GetValues() }

	r := gw(t, append(server, "valuelist", "create", "payees", "--value", "acme", "--from-file", file, "--owner", "finance")...)
	mustSucceed(t, r)
	if want := []string{"DE89 3704 0044 0532 0130 00", "acme", "globex"}; !slices.Equal(values(), want) {
		t.Fatalf("created with %q, want %q (file lines without CR or blanks)", values(), want)
	}
	if want := "value list \"payees\" created with 3 values\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}

	r = gw(t, append(server, "valuelist", "add", "payees", "initech", "acme")...)
	mustSucceed(t, r)
	if !slices.Contains(values(), "initech") || len(values()) != 4 {
		t.Errorf("after add: %q", values())
	}
	mustSucceed(t, gw(t, append(server, "valuelist", "remove", "payees", "globex")...))
	if slices.Contains(values(), "globex") || len(values()) != 3 {
		t.Errorf("after remove: %q", values())
	}

	r = gw(t, append(server, "valuelist", "get", "payees")...)
	mustSucceed(t, r)
	for _, want := range []string{"Name:", "payees", "Owner:", "finance", "Values:", "3", "\n  acme\n", "\n  initech\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = gw(t, append(server, "valuelist", "get", "payees", "-o", "json")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, `"valueList"`) || !strings.Contains(r.stdout, `"initech"`) {
		t.Errorf("json output:\n%s", r.stdout)
	}
	r = gw(t, append(server, "valuelist", "list")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "payees") {
		t.Errorf("list output:\n%s", r.stdout)
	}

	// Usage errors are refused before any call.
	before := len(c.Nodes[0].Requests())
	for _, args := range [][]string{{"valuelist", "add", "payees"}, {"valuelist", "remove"}, {"valuelist", "create"}} {
		if r := gw(t, append(server, args...)...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, r.code)
		}
	}
	if len(c.Nodes[0].Requests()) != before {
		t.Error("a usage error reached the server")
	}
}
