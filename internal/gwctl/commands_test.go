package gwctl_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

func TestSecretSetFromStdinSendsBytes(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	value := "hunter2-line1\nline2\x00\n"
	r := invocation{stdin: value}.run(t, "--server", c.URLs(), "secret", "set", "db-password", "--hosts", "db.internal:5432", "--from-stdin")
	mustSucceed(t, r)
	got, ok := c.SecretValue("db-password")
	if !ok || string(got) != value {
		t.Errorf("server stored %q, want %q", got, value)
	}
	if strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Error("the secret value was echoed")
	}
	if want := "secret \"db-password\" set: version 1, 21 bytes, sent only to db.internal:5432\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
}

func TestSecretSetNeedsOneSource(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	for _, args := range [][]string{
		{"secret", "set", "x"},
		{"secret", "set", "x", "--from-literal", "v", "--from-stdin"},
	} {
		r := gw(t, append([]string{"--server", c.URLs()}, args...)...)
		if r.code == 0 || len(c.Nodes[0].Requests()) != 0 {
			t.Errorf("%v: exit %d, %d requests; want a refusal before any call", args, r.code, len(c.Nodes[0].Requests()))
		}
	}
}

func TestPolicyApply(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, filepath.Join(dir, "main.cedar"),
		"permit(principal, action, resource);\ninvalid one\nforbid(principal, action, resource);\ninvalid two\n")
	good := writeFile(t, filepath.Join(dir, "ok.cedar"), "permit(principal, action, resource);\n")

	c := gwctltest.NewCluster(t, 1)
	r := gw(t, "--server", c.URLs(), "policy", "apply", "-f", bad, "--name", "main")
	want := "Error: policy set \"main\" was refused:\n" +
		"main.cedar:2:1: unexpected token \"invalid one\"\n" +
		"main.cedar:4:1: unexpected token \"invalid two\"\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", r.code, r.stderr, want)
	}

	r = gw(t, "--server", c.URLs(), "policy", "apply", "-f", good, "--name", "main", "--owner", "sec")
	mustSucceed(t, r)
	ps := c.PolicySet("main")
	if ps.GetFilename() != "ok.cedar" || ps.GetMeta().GetOwner() != "sec" {
		t.Errorf("stored filename %q owner %q; want the file's base name and the owner", ps.GetFilename(), ps.GetMeta().GetOwner())
	}
	if r.stdout != "policy set \"main\" applied: version 1, 1 policies\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	r = gw(t, "--server", c.URLs(), "policy", "show", "main")
	mustSucceed(t, r)
	if r.stdout != "permit(principal, action, resource);\n" {
		t.Errorf("policy show printed %q, want the Cedar source", r.stdout)
	}
}

func TestPolicySchema(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	r := gw(t, "--server", c.URLs(), "policy", "schema")
	mustSucceed(t, r)
	if r.stdout != gwctltest.SchemaCedar {
		t.Errorf("table: %q", r.stdout)
	}
	r = gw(t, "--server", c.URLs(), "policy", "schema", "-o", "json")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "{\n  \"Portcullis\": {") {
		t.Errorf("json: %q", r.stdout)
	}
}

func TestTokenCreateAcceptsDays(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	r := gw(t, "--server", c.URLs(), "token", "create", "--role", "operator", "--ttl", "30d", "--description", "ci")
	mustSucceed(t, r)
	reqs := c.TokenRequests()
	if len(reqs) != 1 || reqs[0].GetTtl().AsDuration() != 30*24*time.Hour || reqs[0].GetRole() != configv1.Role_ROLE_OPERATOR {
		t.Fatalf("CreateToken requests = %v", reqs)
	}
	if strings.Count(r.stdout, "pct_") != 1 || !strings.Contains(r.stdout, "Token (shown only this once") {
		t.Errorf("stdout should show the new token once, clearly marked:\n%s", r.stdout)
	}
}

func TestUpstreamAddBuildsRequest(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	mustSucceed(t, gw(t, "--server", c.URLs(), "upstream", "add", "gh", "--url", "https://mcp.example.com",
		"--no-prefix", "--header-secret", "X-Api-Key=gh-key", "--timeout-per-call", "1m", "--protocol", "a2a"))
	up := c.Upstream("gh")
	switch {
	case up.ToolPrefix == nil || *up.ToolPrefix != "":
		t.Errorf("tool prefix = %v, want set and empty", up.ToolPrefix)
	case up.GetCredential().GetHeader().GetHeader() != "X-Api-Key" || up.GetCredential().GetHeader().GetSecret() != "gh-key":
		t.Errorf("credential = %v", up.GetCredential())
	case up.GetResilience().GetTimeout().AsDuration() != time.Minute:
		t.Errorf("resilience = %v", up.GetResilience())
	case up.GetProtocol() != configv1.Protocol_PROTOCOL_A2A:
		t.Errorf("protocol = %v", up.GetProtocol())
	}
	mustSucceed(t, gw(t, "--server", c.URLs(), "upstream", "add", "gl", "--url", "https://gl.example.com"))
	if up := c.Upstream("gl"); up.ToolPrefix != nil || up.GetProtocol() != configv1.Protocol_PROTOCOL_MCP {
		t.Errorf("defaults: prefix %v protocol %v; want unset and mcp", up.ToolPrefix, up.GetProtocol())
	}
}

func TestSnapshotSaveAndRestore(t *testing.T) {
	c := gwctltest.NewCluster(t, 2)
	c.Nodes[0].Fail(gwctltest.Unavailable)               // the stream fails over too
	backup := bytes.Repeat([]byte("sealed-state-"), 500) // several chunks
	c.SetBackup(backup)
	file := filepath.Join(t.TempDir(), "state.bak")

	r := gw(t, "--server", c.URLs(), "snapshot", "save", file)
	mustSucceed(t, r)
	got, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(got, backup) {
		t.Fatalf("saved %d bytes (err %v), want %d", len(got), err, len(backup))
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}

	if !strings.Contains(r.stderr, "retried on "+c.Nodes[1].URL) {
		t.Errorf("stderr = %q, want a failover warning", r.stderr)
	}

	r = gw(t, "--server", c.URLs(), "snapshot", "restore", file)
	if r.code != 1 || !strings.Contains(r.stderr, "pass --yes") || c.Restored() != nil {
		t.Errorf("restore without --yes: exit %d, stderr %q", r.code, r.stderr)
	}
	mustSucceed(t, gw(t, "--server", c.URLs(), "snapshot", "restore", file, "--yes"))
	if !bytes.Equal(c.Restored(), backup) {
		t.Error("the server did not receive the backup")
	}
}

func TestClusterStatusTable(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	r := gw(t, "--server", c.URLs(), "cluster", "status")
	mustSucceed(t, r)
	for _, want := range []string{"Cluster:         c-test", "CA fingerprint:  sha256:00ff", "node-1   *        voter"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"agnet"}, `Error: unknown command "agnet" for "gwctl"`},
		{"unknown subcommand", []string{"agent", "frob"}, `Error: unknown command "frob" for "gwctl agent"`},
		{"missing argument", []string{"agent", "get"}, `Error: "gwctl agent get" needs NAME (got 0 arguments)`},
		{"bad duration", []string{"token", "create", "--role", "admin", "--ttl", "3x"}, `invalid duration "3x"`},
		{"bad enum", []string{"tool", "pin", "--class", "risky"}, "want one of read-only, idempotent, mutating"},
		{"learn without a scope", []string{"valuelist", "learn", "l1", "--tool", "bank__transfer", "--argument", "to"}, "--tool, --argument and --scope are required"},
		{"learn with a bad scope", []string{"valuelist", "learn", "l1", "--scope", "everyone"}, "want one of agent, team, global"},
		{"approve without values", []string{"valuelist", "approve", "l1"}, "give NAME and the values, or --record"},
		{"approve a record and values", []string{"valuelist", "approve", "l1", "v", "--record", "dp1/1"}, "--record gives the value"},
		{"rate limit without a rate", []string{"ratelimit", "set", "r1", "--key", "agent"}, "give --rate, --max-in-flight or both"},
		{"rate limit with a bad period", []string{"ratelimit", "set", "r1", "--rate", "10/day"}, `--rate "10/day": the period must be s, min or h`},
		{"rate limit with a bad key", []string{"ratelimit", "set", "r1", "--rate", "10/s", "--key", "agent+model"}, "each part must be agent, team, user, upstream or tool"},
		{"rate limit with a bad match", []string{"ratelimit", "set", "r1", "--rate", "10/s", "--match", "colour=red"}, `"colour" is not agent, team, upstream or tool`},
		{"rate limit with a bad mode", []string{"ratelimit", "set", "r1", "--rate", "10/s", "--mode", "dry"}, "want enforce or shadow"},
		{"alert rule without events", []string{"alert", "rule", "create", "r1", "--url", "https://h/x", "--signing-secret", "k"}, "give at least one event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gw(t, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "Error:") != 1 {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestBadOutputFormat(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	r := gw(t, "--server", c.URLs(), "-o", "xml", "agent", "list")
	if r.code != 1 || !strings.Contains(r.stderr, `unknown output format "xml"`) || len(c.Nodes[0].Requests()) != 0 {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEveryCommandReachesTheServer runs each command once against the fake:
// it must either succeed or relay the server's error, never fail locally.
func TestEveryCommandReachesTheServer(t *testing.T) {
	dir := t.TempDir()
	def := writeFile(t, filepath.Join(dir, "tool.json"), `{"name":"search","inputSchema":{"type":"object"}}`)
	jwks := writeFile(t, filepath.Join(dir, "jwks.json"), `{"keys":[]}`)
	tests := [][]string{
		{"cluster", "status", "-o", "yaml"},
		{"cluster", "join", "--node-id", "n4", "--raft-addr", "10.0.0.4:7441", "--api-addr", "10.0.0.4:7440"},
		{"cluster", "remove", "n4"},
		{"agent", "create", "a1", "--team", "t", "--owner", "o", "--description", "d", "--spiffe-id", "spiffe://x/y", "--cert-fingerprint", "sha256:ab"},
		{"agent", "get", "a1"},
		{"agent", "disable", "a1"},
		{"agent", "enable", "a1"},
		{"agent", "list", "-o", "json"},
		{"agent", "delete", "a1"},
		{"upstream", "add", "u1", "--url", "https://u.example.com", "--bearer-secret", "s1", "--prefix", "uu"},
		{"upstream", "list"},
		{"upstream", "get", "u1"},
		{"upstream", "remove", "u1"},
		{"tool", "pin", "--upstream", "u1", "--tool", "search", "--definition", def, "--class", "read-only"},
		{"tool", "list", "--upstream", "u1"},
		{"tool", "get", "u1", "search"},
		{"tool", "delete", "u1", "search"},
		{"policy", "list"},
		{"policy", "delete", "p1"},
		{"identity", "add-jwt", "idp", "--issuer", "https://idp", "--jwks-file", jwks, "--alg", "RS256", "--use", "both"},
		{"identity", "list"},
		{"identity", "get", "idp"},
		{"identity", "delete", "idp"},
		{"secret", "set", "s1", "--hosts", "h.example", "--from-literal", "v"},
		{"secret", "bind", "s1", "--hosts", "h.example,g.example"},
		{"secret", "list"},
		{"secret", "get", "s1"},
		{"secret", "delete", "s1"},
		{"valuelist", "create", "l1", "--value", "a"},
		{"valuelist", "list"},
		{"valuelist", "get", "l1"},
		{"valuelist", "add", "l1", "b"},
		{"valuelist", "remove", "l1", "a"},
		{"valuelist", "delete", "l1"},
		{"valuelist", "learn", "l1", "--tool", "bank__transfer", "--argument", "to", "--scope", "agent", "--from-history", "90d"},
		{"valuelist", "approve", "l1", "acme", "--agent", "a1"},
		{"valuelist", "approve", "--record", "dp1/42"},
		{"valuelist", "forget", "l1", "acme", "--team", "t"},
		{"valuelist", "unlearn", "l1"},
		{"alert", "rule", "create", "r1", "--on-deny", "security", "--url", "https://hooks.example.com/in", "--signing-secret", "k"},
		{"alert", "rule", "list"},
		{"alert", "rule", "get", "r1"},
		{"alert", "rule", "delete", "r1"},
		{"alert", "list"},
		{"alert", "drop", "a1"},
		{"audit", "consumers"},
		{"token", "list"},
		{"token", "revoke", "tok9"},
		{"admin-log", "--limit", "10"},
	}
	c := gwctltest.NewCluster(t, 1)
	for _, args := range tests {
		t.Run(strings.Join(args[:min(3, len(args))], " "), func(t *testing.T) {
			before := len(c.Nodes[0].Requests())
			r := gw(t, append([]string{"--server", c.URLs()}, args...)...)
			if len(c.Nodes[0].Requests()) == before {
				t.Fatalf("no request reached the server; stderr %q", r.stderr)
			}
			if r.code != 0 && !strings.HasPrefix(r.stderr, "Error: unimplemented: ") && !strings.HasPrefix(r.stderr, "Error: not_found: ") {
				t.Errorf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
}

func TestAdminLogPagesUpToLimit(t *testing.T) {
	c := gwctltest.NewCluster(t, 1, gwctltest.WithMaxPageSize(1))
	mustSucceed(t, gw(t, "--server", c.URLs(), "agent", "create", "a1"))
	if r := gw(t, "--server", c.URLs(), "agent", "create", "a1"); r.code != 1 {
		t.Fatalf("second create: exit %d, want 1 (already exists)", r.code)
	}
	mustSucceed(t, gw(t, "--server", c.URLs(), "secret", "set", "s1", "--hosts", "h.example", "--from-literal", "v"))

	before := len(c.Nodes[0].Requests())
	r := gw(t, "--server", c.URLs(), "admin-log", "--limit", "2")
	mustSucceed(t, r)
	want := "" +
		"TIME                   ACTOR          METHOD                     KIND   NAME   RESULT\n" +
		"2026-01-02T03:04:05Z   tok1 (admin)   SecretService.SetSecret    -      -      ok\n" +
		"2026-01-02T03:04:05Z   tok1 (admin)   AgentService.CreateAgent   -      -      ALREADY_EXISTS\n"
	if r.stdout != want {
		t.Errorf("admin-log:\n%s\nwant:\n%s", r.stdout, want)
	}
	if n := len(c.Nodes[0].Requests()) - before; n != 2 {
		t.Errorf("%d ListAdminEvents calls, want 2 (page size 1, limit 2)", n)
	}
}
