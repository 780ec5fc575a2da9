package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestGwctlErrors checks what an operator sees when something is wrong, on a
// one-node cluster: a refused token, a role that is too small, an invalid
// Cedar file, a dead first --server and a missing --ca-file.
func TestGwctlErrors(t *testing.T) {
	c := harness.StartCluster(t, 1)
	n1 := c.Nodes[0]
	env := c.Env()

	// expectFailure runs gwctl, wants a non-zero exit and every want in
	// stderr, and returns the result.
	expectFailure := func(t *testing.T, env []string, want []string, args ...string) harness.Result {
		t.Helper()
		r := harness.Gwctl(t, env, args...)
		if r.OK() {
			t.Fatalf("gwctl %s succeeded, want a failure; stdout:\n%s", strings.Join(args, " "), r.Stdout)
		}
		for _, w := range want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("gwctl %s: stderr %q does not contain %q", strings.Join(args, " "), r.Stderr, w)
			}
		}
		return r
	}

	t.Run("wrong token", func(t *testing.T) {
		// A well-formed token with the bootstrap token's id and a wrong
		// secret, and one that is not a token at all.
		last := "A"
		if strings.HasSuffix(c.Token, last) {
			last = "B"
		}
		tampered := c.Token[:len(c.Token)-1] + last
		for _, tok := range []string{tampered, "not-a-token"} {
			r := expectFailure(t, setEnv(env, "GWCTL_TOKEN="+tok), []string{"token was refused"}, "agent", "list")
			if r.Code != 1 {
				t.Errorf("exit code %d, want 1", r.Code)
			}
			if strings.Contains(r.Stderr, tok) {
				t.Errorf("stderr shows the token: %q", r.Stderr)
			}
		}
	})

	t.Run("auditor cannot create agents", func(t *testing.T) {
		var tok struct {
			Secret string `json:"secret"`
			Token  struct {
				Role string `json:"role"`
			} `json:"token"`
		}
		harness.GwctlJSON(t, env, &tok, "token", "create", "--role", "auditor", "--ttl", "1h", "--description", "e2e auditor")
		if tok.Secret == "" || tok.Token.Role != "ROLE_AUDITOR" {
			t.Fatalf("token create printed secret %q, role %q", tok.Secret, tok.Token.Role)
		}
		auditor := setEnv(env, "GWCTL_TOKEN="+tok.Secret)
		harness.MustGwctl(t, auditor, "agent", "list") // the token works…
		expectFailure(t, auditor, []string{"lacks role operator"}, "agent", "create", "by-auditor")
		expectFailure(t, env, []string{"not_found"}, "agent", "get", "by-auditor") // …and created nothing
	})

	t.Run("invalid cedar", func(t *testing.T) {
		dir := t.TempDir()
		good := filepath.Join(dir, "baseline.cedar")
		writeFile(t, good, `permit(principal in Team::"payments", action in Action::"call_tool", resource);`+"\n")
		harness.MustGwctl(t, env, "policy", "apply", "-f", good, "--name", "baseline")
		var before, after any
		harness.GwctlJSON(t, env, &before, "policy", "list")

		cases := map[string]string{
			// A syntax error on line 3.
			"syntax.cedar": "// e2e: a broken policy\n" +
				"permit(principal, action, resource)\n" +
				"  when { principal.name == };\n",
			// Parses, but refers to an attribute the schema does not have.
			"schema.cedar": "permit(principal, action in Action::\"call_tool\", resource)\n" +
				"  when { principal.noSuchAttribute == \"x\" };\n",
		}
		for file, src := range cases {
			path := filepath.Join(dir, file)
			writeFile(t, path, src)
			r := expectFailure(t, env, nil, "policy", "apply", "-f", path, "--name", "broken")
			pos := regexp.MustCompile(regexp.QuoteMeta(file) + `:\d+:\d+`)
			if !pos.MatchString(r.Stderr) {
				t.Errorf("%s: stderr has no %s:line:col position: %q", file, file, r.Stderr)
			}
		}
		harness.GwctlJSON(t, env, &after, "policy", "list")
		if !reflect.DeepEqual(before, after) {
			t.Errorf("policy list changed after refused applies:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("failover to the second server", func(t *testing.T) {
		dead := "https://" + harness.FreeAddr(t) // nothing listens there
		failover := setEnv(env, "GWCTL_SERVER="+dead+","+n1.URL)
		r := harness.MustGwctl(t, failover, "agent", "list")
		if want := "warning: " + dead; !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "retried on "+n1.URL) {
			t.Errorf("stderr %q lacks the failover warning (%q … retried on %s)", r.Stderr, want, n1.URL)
		}
		// A write fails over too, and happens once.
		harness.MustGwctl(t, failover, "agent", "create", "via-failover")
		names, err := agentNames(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if names["via-failover"] != 1 {
			t.Errorf("via-failover is listed %d times, want once", names["via-failover"])
		}
	})

	t.Run("https without ca-file", func(t *testing.T) {
		expectFailure(t, setEnv(env, "GWCTL_CA_FILE="), []string{"--ca-file"}, "agent", "list")
	})

	c.MustCleanShutdown(t)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
