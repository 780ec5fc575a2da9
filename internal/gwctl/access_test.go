package gwctl_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

// accessCluster is a fake control plane answering access questions over
// the authz fixture (team payments may call every tool, nobody may pay
// 500 or more).
func accessCluster(t *testing.T) *gwctltest.Cluster {
	t.Helper()
	c := gwctltest.NewCluster(t, 1)
	c.SetAuthorizationSnapshot(authztest.Snapshot())
	return c
}

// checkAnswer is the JSON `gwctl access check -o json` prints.
type checkAnswer struct {
	Allowed  bool `json:"allowed"`
	Policies []struct {
		ID     string `json:"id"`
		Effect string `json:"effect"`
		File   string `json:"file"`
		Line   int    `json:"line"`
		Column int    `json:"column"`
	} `json:"policies"`
	Errors           []string `json:"errors"`
	InvalidArguments bool     `json:"invalidArguments"`
	Version          uint64   `json:"configVersion"`
}

func TestAccessCheckAsksTheServer(t *testing.T) {
	c := accessCluster(t)
	r := gw(t, "--server", c.URLs(), "-o", "json", "access", "check", "--agent", "payer", "--tool", authztest.PayAction,
		"--args", `{"amount": 900, "to": "acme"}`, "--user", "corp/alice", "--group", "finance", "--source-ip", "10.1.2.3",
		"--time", "2026-11-26T10:00:00Z", "--degraded", "--finding", "pii", "--finding", "pii.email")
	mustSucceed(t, r)
	var got checkAnswer
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if got.Allowed || len(got.Policies) != 1 || got.Version != authztest.Version {
		t.Fatalf("answer = %+v, want a deny by one policy at version %d", got, authztest.Version)
	}
	if p := got.Policies[0]; p.ID != "payments/policy1" || p.Effect != "forbid" || p.File != authztest.PolicyFile || p.Line != 2 || p.Column != 1 {
		t.Errorf("policy = %+v, want the forbid payments/policy1 at payments.cedar:2:1", p)
	}
	q := c.LastCheck()
	switch {
	case q == nil:
		t.Fatal("the server was not asked")
	case q.GetAgent() != "payer" || q.GetResource().GetType() != "Tool" || q.GetResource().GetId() != authztest.PayAction || q.GetAction() != authztest.PayAction:
		t.Errorf("question names %q doing %q to %v", q.GetAgent(), q.GetAction(), q.GetResource())
	case q.GetArgumentsJson() != `{"amount": 900, "to": "acme"}` || q.GetSourceIp() != "10.1.2.3" || !q.GetDegraded():
		t.Errorf("question carries arguments %q, source %q, degraded %v", q.GetArgumentsJson(), q.GetSourceIp(), q.GetDegraded())
	case q.GetTime().AsTime().Format("2006-01-02T15:04:05Z") != "2026-11-26T10:00:00Z":
		t.Errorf("question time = %v", q.GetTime().AsTime())
	case q.GetUser().GetSource() != "corp" || q.GetUser().GetName() != "alice" || !slices.Equal(q.GetUser().GetGroups(), []string{"finance"}):
		t.Errorf("question user = %v", q.GetUser())
	case !slices.Equal(q.GetFindings(), []string{"pii", "pii.email"}):
		t.Errorf("question findings = %v", q.GetFindings())
	}

	// For people: the decision, the policy and where it is written.
	r = gw(t, "--server", c.URLs(), "access", "check", "--agent", "payer", "--tool", authztest.PayAction, "--args", `{"amount": 900, "to": "acme"}`)
	mustSucceed(t, r)
	want := "DENY (configuration version 42)\nforbidden by:\n  payments/policy1 (payments.cedar:2:1)\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestAccessCheckUnknownNamesAreErrors(t *testing.T) {
	c := accessCluster(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--agent", "nobody", "--tool", authztest.PayAction}, `no agent "nobody"`},
		{[]string{"--agent", "payer", "--tool", "pay__steal"}, `no tool "pay__steal"`},
	} {
		r := gw(t, append([]string{"--server", c.URLs(), "access", "check"}, tt.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stdout, "DENY") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want an error naming %q, not a deny", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
}

func TestAccessWhoCanAsksTheServer(t *testing.T) {
	c := accessCluster(t)
	r := gw(t, "--server", c.URLs(), "-o", "json", "access", "who-can", "--tool", authztest.BalanceAction)
	mustSucceed(t, r)
	var got struct {
		Tool    string   `json:"tool"`
		Agents  []string `json:"agents"`
		Version uint64   `json:"configVersion"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if got.Tool != authztest.BalanceAction || !slices.Equal(got.Agents, []string{"payer"}) || got.Version != authztest.Version {
		t.Errorf("who-can = %+v, want payer at version %d", got, authztest.Version)
	}
	r = gw(t, "--server", c.URLs(), "access", "who-can", "--tool", "pay__steal")
	if r.code == 0 || !strings.Contains(r.stderr, `no tool "pay__steal"`) {
		t.Errorf("unknown tool: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestAccessEvaluatesLocally: with --snapshot, gwctl decides without a
// control plane; with --policy, it decides over the control plane's
// authorization snapshot with the files laid over it, without asking the
// server for the decision.
func TestAccessEvaluatesLocally(t *testing.T) {
	dir := t.TempDir()
	b, err := protojson.Marshal(authztest.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	exported := writeFile(t, filepath.Join(dir, "authz.json"), string(b))
	r := gw(t, "--server", closedURL(t), "-o", "json", "access", "check", "--snapshot", exported,
		"--agent", "payer", "--tool", authztest.PayAction, "--args", `{"amount": 100, "to": "acme"}`)
	mustSucceed(t, r)
	var got checkAnswer
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Allowed || len(got.Policies) != 1 || got.Policies[0].ID != "payments/policy0" || got.Policies[0].Line != 1 {
		t.Errorf("offline answer = %+v, want allowed by payments/policy0 at line 1", got)
	}

	c := accessCluster(t)
	open := writeFile(t, filepath.Join(dir, "open.cedar"), `permit(principal == Agent::"marketer", action, resource);`)
	r = gw(t, "--server", c.URLs(), "-o", "json", "access", "who-can", "--tool", authztest.PayAction, "--policy", "extra="+open)
	mustSucceed(t, r)
	var who struct {
		Agents []string `json:"agents"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &who); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(who.Agents, []string{"marketer", "payer"}) {
		t.Errorf("who-can with the candidate = %v, want marketer and payer", who.Agents)
	}
	if c.LastCheck() != nil {
		t.Error("a local evaluation asked the server for a decision")
	}
}

func TestPolicyTestRunsLocally(t *testing.T) {
	c := accessCluster(t)
	dir := t.TempDir()
	cases := writeFile(t, filepath.Join(dir, "cases.yaml"), `cases:
  - {name: small, agent: payer, tool: pay__pay, args: {amount: 100, to: acme}, expect: allow, policies: [payments/policy0]}
  - {name: large, agent: payer, tool: pay__pay, args: {amount: 900, to: acme}, expect: deny}
`)
	r := gw(t, "--server", c.URLs(), "policy", "test", "-f", cases)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "2 passed, 0 failed") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	lax := writeFile(t, filepath.Join(dir, "lax.cedar"), `permit(principal, action, resource);`)
	r = gw(t, "--server", c.URLs(), "policy", "test", "-f", cases, "--policy", "payments="+lax)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  large: expected deny, got allow") || !strings.Contains(r.stderr, "1 of 2 cases failed") {
		t.Errorf("with the lax candidate: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if c.LastCheck() != nil {
		t.Error("policy test asked the server for decisions")
	}
}

// TestAccessFallsBackOnAnOlderControlPlane: a control plane without
// AccessService.Check still answers, through its authorization snapshot.
func TestAccessFallsBackOnAnOlderControlPlane(t *testing.T) {
	c := accessCluster(t)
	c.Nodes[0].Fail(func(procedure string) error {
		if procedure == adminv1connect.AccessServiceCheckProcedure {
			return connect.NewError(connect.CodeUnimplemented, errors.New("no such procedure"))
		}
		return nil
	})
	r := gw(t, "--server", c.URLs(), "access", "check", "--agent", "payer", "--tool", authztest.PayAction, "--args", `{"amount": 900, "to": "acme"}`)
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "DENY (configuration version 42)") || !strings.Contains(r.stderr, "deciding locally") {
		t.Errorf("stdout %q, stderr %q; want a local DENY and a warning", r.stdout, r.stderr)
	}
}
