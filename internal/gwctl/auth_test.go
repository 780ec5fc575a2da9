package gwctl_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

const adminToken = "pct_tok1_v3ryS3cretAdminToken"

func TestTokenIsSentAndNeverPrinted(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("\n  "+adminToken+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		inv  invocation
		args []string
	}{
		{name: "flag", args: []string{"--token", adminToken}},
		{name: "token file flag", args: []string{"--token-file", file}},
		{name: "env", inv: invocation{env: map[string]string{"GWCTL_TOKEN": adminToken}}},
		{name: "env token file", inv: invocation{env: map[string]string{"GWCTL_TOKEN_FILE": file}}},
		{name: "flag beats env", inv: invocation{env: map[string]string{"GWCTL_TOKEN": "pct_other_x"}}, args: []string{"--token-file", file}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gwctltest.NewCluster(t, 1, gwctltest.WithToken(adminToken))
			for _, cmd := range [][]string{
				{"agent", "create", "a1", "-o", "json"},
				{"agent", "get", "a1", "-o", "yaml"},
				{"agent", "get", "missing"}, // an error path
			} {
				args := append(append([]string{"--server", c.URLs()}, tt.args...), cmd...)
				r := tt.inv.run(t, args...)
				if strings.Contains(r.stdout+r.stderr, "v3ryS3cret") {
					t.Errorf("gwctl %v printed the token", cmd)
				}
			}
			for _, req := range c.Nodes[0].Requests() {
				if got := req.Header.Get("Authorization"); got != "Bearer "+adminToken {
					t.Errorf("%s: Authorization = %q", req.Procedure, got)
				}
			}
		})
	}
}

func TestRefusedTokenExplains(t *testing.T) {
	c := gwctltest.NewCluster(t, 1, gwctltest.WithToken(adminToken))
	for _, args := range [][]string{
		{"--server", c.URLs(), "agent", "list"},
		{"--server", c.URLs(), "--token", "pct_bad_wrongtoken", "agent", "list"},
	} {
		r := gw(t, args...)
		want := "Error: the token was refused (missing, unknown, revoked or expired): pass --token or set GWCTL_TOKEN\n"
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, want)
		}
		if strings.Contains(r.stderr, "wrongtoken") {
			t.Error("the refused token was printed")
		}
	}
}

func TestPermissionDeniedShowsServerMessage(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	c.Nodes[0].Fail(func(string) error {
		return connect.NewError(connect.CodePermissionDenied, errors.New("token lacks role operator"))
	})
	r := gw(t, "--server", c.URLs(), "agent", "disable", "a1")
	if r.code != 1 || r.stderr != "Error: token lacks role operator\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestOtherErrorsShowCodeAndMessage(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	r := gw(t, "--server", c.URLs(), "agent", "get", "ghost")
	if r.code != 1 || r.stderr != "Error: not_found: agent \"ghost\" not found\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestTLSVerification(t *testing.T) {
	c := gwctltest.NewCluster(t, 2, gwctltest.WithTLS())

	r := gw(t, "--server", c.URLs(), "agent", "list")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	got := lines(r.stderr)
	if len(got) != 1 || !strings.HasPrefix(got[0], "Error: "+c.Nodes[0].URL+": ") ||
		!strings.Contains(got[0], "pass --ca-file <control-plane data dir>/tls/ca.crt") {
		t.Errorf("stderr = %q, want one error (no failover) telling to pass --ca-file", r.stderr)
	}

	mustSucceed(t, gw(t, "--server", c.URLs(), "--ca-file", c.CAFile(), "agent", "list"))
	mustSucceed(t, invocation{env: map[string]string{"GWCTL_CA_FILE": c.CAFile(), "GWCTL_SERVER": c.URLs()}}.run(t, "agent", "list"))
}
