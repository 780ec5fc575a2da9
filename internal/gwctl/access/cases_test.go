package access_test

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/gwctl/access"
)

const goodCases = `
cases:
  - name: small payment
    agent: payer
    tool: pay__pay
    args: {amount: 100, to: acme}
    expect: allow
    policies: [payments/policy0]
  - name: large payment
    agent: payer
    tool: pay__pay
    args: {amount: 900, to: acme}
    expect: deny
  - name: marketer reads balance as a user
    agent: marketer
    user: corp/alice
    groups: [finance]
    tool: pay__balance
    time: 2026-11-26T10:00:00Z
    sourceIp: 10.0.0.7
    expect: deny
`

func TestRunCases(t *testing.T) {
	cases, err := access.ParseCases([]byte(goodCases))
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvaluator(t, nil, false)
	for _, r := range access.Run(context.Background(), ev, cases) {
		if !r.Passed {
			t.Errorf("%s: failed: %s", r.Case.Name, r.Why)
		}
	}

	// The same cases against a policy set that lets everyone pay anything.
	ev = newEvaluator(t, []access.PolicyFile{{Name: "payments", Filename: "lax.cedar",
		Source: `permit(principal, action, resource);`}}, false)
	results := access.Run(context.Background(), ev, cases)
	want := map[string]string{
		"large payment":                    "expected deny, got allow",
		"marketer reads balance as a user": "expected deny, got allow",
	}
	for _, r := range results {
		if r.Passed {
			// small payment is still permitted by payments/policy0 (the
			// lax set's only policy has the same id), so it passes.
			if r.Case.Name != "small payment" {
				t.Errorf("%s passed against the lax set", r.Case.Name)
			}
			continue
		}
		if r.Why != want[r.Case.Name] {
			t.Errorf("%s: why = %q, want %q", r.Case.Name, r.Why, want[r.Case.Name])
		}
	}
}

func TestRunCasesPolicyMismatchAndUnknownNames(t *testing.T) {
	cases, err := access.ParseCases([]byte(`
cases:
  - name: wrong policy
    agent: payer
    tool: pay__pay
    args: {amount: 100, to: acme}
    expect: allow
    policies: [payments/policy1]
  - name: typo in agent
    agent: payr
    tool: pay__pay
    expect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	results := access.Run(context.Background(), newEvaluator(t, nil, false), cases)
	if results[0].Passed || !strings.Contains(results[0].Why, "expected policies [payments/policy1], got [payments/policy0]") {
		t.Errorf("wrong policy: %+v", results[0])
	}
	// A typo fails the case; it is never a silent "deny" pass.
	if results[1].Passed || !strings.Contains(results[1].Why, `no agent "payr"`) {
		t.Errorf("typo: %+v", results[1])
	}
}

// TestRunCasesWithFindings: a case sets context.findings as runtime
// inspection would, so a policy on findings can be tested before it is
// applied.
func TestRunCasesWithFindings(t *testing.T) {
	cases, err := access.ParseCases([]byte(`
cases:
  - name: clean payment
    agent: payer
    tool: pay__pay
    args: {amount: 100, to: acme}
    expect: allow
  - name: exfiltration found
    agent: payer
    tool: pay__pay
    args: {amount: 100, to: acme}
    findings: [exfiltration, exfiltration.url_payload]
    expect: deny
    policies: [guard/no-exfil]
`))
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvaluator(t, []access.PolicyFile{{Name: "guard", Filename: "guard.cedar",
		Source: `@id("no-exfil") forbid(principal, action, resource) when { context.findings.contains("exfiltration") };`}}, false)
	for _, r := range access.Run(context.Background(), ev, cases) {
		if !r.Passed {
			t.Errorf("%s: failed: %s", r.Case.Name, r.Why)
		}
	}
}

func TestParseCasesRefusesBadFiles(t *testing.T) {
	for _, tt := range []struct {
		name, text, want string
	}{
		{"empty", "cases: []", "no cases"},
		{"unknown field", "cases:\n  - {agent: a, tool: t, expect: allow, expected: deny}", "unknown field"},
		{"bad expect", "cases:\n  - {agent: a, tool: t, expect: permit}", "expect must be allow or deny"},
		{"no agent", "cases:\n  - {tool: t, expect: allow}", "no agent"},
		{"duplicate names", "cases:\n  - {name: x, agent: a, tool: t, expect: allow}\n  - {name: x, agent: a, tool: t, expect: deny}", "also case 1's"},
		{"args not a map", "cases:\n  - {agent: a, tool: t, expect: allow, args: [1]}", "args must be a map"},
		{"bare user", "cases:\n  - {agent: a, tool: t, expect: allow, user: alice}", "SOURCE/NAME"},
		{"groups without user", "cases:\n  - {agent: a, tool: t, expect: allow, groups: [g]}", "need a user"},
		{"bad time", "cases:\n  - {agent: a, tool: t, expect: allow, time: yesterday}", "RFC 3339"},
		{"bad ip", "cases:\n  - {agent: a, tool: t, expect: allow, sourceIp: 300.1.1.1}", "sourceIp"},
		{"not yaml", "cases: [", "parse cases"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := access.ParseCases([]byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := access.ParseCases(make([]byte, access.MaxCasesBytes+1)); err == nil {
		t.Error("an oversized file was accepted")
	}
}
