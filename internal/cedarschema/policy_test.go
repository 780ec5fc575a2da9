package cedarschema_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

func TestParsePoliciesAcceptsValidPolicies(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	tests := []struct {
		name string
		src  string
	}{
		{name: "allowlist by team", src: `permit(principal in Team::"payments", action in Action::"call_tool", resource);`},
		{name: "integer argument", src: `forbid(principal, action == Action::"pay__send", resource) when { context.arguments.amount >= 500 };`},
		{name: "decimal argument", src: `permit(principal, action == Action::"pay__send", resource) when { context.arguments.price.lessThan(decimal("10.5")) };`},
		{name: "time of day", src: `forbid(principal, action in Action::"call_tool", resource) unless { context.time.toTime() >= duration("9h") && context.time.toTime() < duration("17h") };`},
		{name: "time of day with offset", src: `permit(principal, action in Action::"call_tool", resource) when { context.time.offset(duration("-5h")).toTime() < duration("17h30m") };`},
		{name: "weekday arithmetic on date", src: `permit(principal, action in Action::"call_tool", resource) when { context.time.durationSince(context.time.toDate()).toHours() < 17 };`},
		{name: "agent tag", src: `permit(principal, action in Action::"call_tool", resource) when { principal.hasTag("env") && principal.getTag("env") == "prod" };`},
		{name: "verified user group", src: `permit(principal, action == Action::"pay__send", resource) when { context has user && context.user in Group::"finance" };`},
		{name: "user tag and optional email", src: `permit(principal, action in Action::"call_tool", resource) when { context has user && context.user has email && context.user.email like "*@example.com" && context.user.hasTag("role") };`},
		{name: "quoted argument name", src: `permit(principal, action == Action::"pay__send", resource) when { context.arguments has "odd-name" && context.arguments["odd-name"] == "x" };`},
		{name: "nested record", src: `permit(principal, action == Action::"pay__send", resource) when { context.arguments.recipient.iban like "DE*" && (context.arguments.recipient has name) };`},
		{name: "set argument", src: `permit(principal, action == Action::"github__create_issue", resource) when { context.arguments has labels && context.arguments.labels.contains("bug") };`},
		{name: "group-wide argument behind has", src: `forbid(principal, action in Action::"call_tool", resource) when { context.arguments has amount && context.arguments.amount > 1000 };`},
		{name: "source ip and degraded", src: `forbid(principal, action in Action::"call_tool", resource) when { !context.sourceIp.isInRange(ip("10.0.0.0/8")) || context.degraded };`},
		{name: "resource in upstream", src: `permit(principal is Agent, action in Action::"call_tool", resource in Upstream::"github") when { resource.readOnly && resource.version >= 2 && principal.owner == "alice" };`},
		{name: "action set", src: `permit(principal, action in [Action::"pay__send", Action::"github__create_issue"], resource) when { context.protocol == "mcp" };`},
		{name: "unconstrained", src: `forbid(principal, action, resource) when { context.degraded };`},
		{name: "findings", src: `forbid(principal, action in Action::"call_tool", resource) when { context.findings.contains("exfiltration") || context.findings.containsAny(["pii.iban", "pii.payment_card"]) };`},
		{name: "unconstrained reads tool attributes", src: `permit(principal, action, resource) when { resource.readOnly && resource.version > 1 && resource.name != "x" && context.arguments has amount };`},
		{name: "a2a send group", src: `permit(principal in Team::"ops", action in Action::"a2a_send", resource in Upstream::"travel");`},
		{name: "a2a read group on remote agent", src: `permit(principal, action in Action::"a2a_read", resource is RemoteAgent);`},
		{name: "a2a skill and sizes", src: `permit(principal, action == Action::"a2a:send_message", resource == RemoteAgent::"travel") when { context has skill && resource.skills.contains(context.skill) && context.messageBytes < 4096 && context.metadataBytes <= 1024 };`},
		{name: "a2a cancel by user", src: `forbid(principal, action == Action::"a2a:cancel_task", resource) unless { context has user && context.user in Group::"ops" };`},
		{name: "empty source", src: ``},
		{name: "comments only", src: "// nothing yet\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.ParsePolicies("main", "main.cedar", []byte(tt.src)); err != nil {
				t.Errorf("ParsePolicies refused a valid policy:\n%v", err)
			}
		})
	}
}

// Remote-agent actions carry no tool arguments and tools no skill: a
// policy that reads them without guarding is refused.
func TestParsePoliciesRefusesA2AMismatches(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	tests := []struct {
		name, src string
	}{
		{name: "skill on a tool action", src: `permit(principal, action == Action::"pay__send", resource) when { context.skill == "x" };`},
		{name: "unguarded skill", src: `permit(principal, action == Action::"a2a:send_message", resource) when { context.skill == "x" };`},
		{name: "tool argument on a2a action", src: `permit(principal, action == Action::"a2a:send_message", resource) when { context.arguments.amount > 1 };`},
		{name: "group is not an action", src: `permit(principal, action == Action::"a2a_send", resource);`},
		{name: "remote agent for a tool action", src: `permit(principal, action == Action::"pay__send", resource == RemoteAgent::"travel");`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.ParsePolicies("main", "main.cedar", []byte(tt.src)); err == nil {
				t.Errorf("ParsePolicies accepted %s", tt.src)
			}
		})
	}
}

func TestParsePoliciesRefusesInvalidPolicies(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	// The second policy of each source is the bad one; it starts at line 3.
	const ok = "permit(principal in Team::\"payments\", action in Action::\"call_tool\", resource);\n\n"
	tests := []struct {
		name     string
		src      string
		line     int
		column   int
		policyID string
		message  string
	}{
		// The scanner points at the offending character; the parser names
		// the token it stopped at, often the one after the offender.
		{
			name: "unterminated string",
			src:  ok + "permit(principal,\n  action,\n  resource) when { principal.name == \"abc };",
			line: 5, column: 38,
			message: "syntax error: literal not terminated",
		},
		{
			name: "invalid expression",
			src:  ok + "permit(principal, action, resource)\n  when { principal.name == \"x\" && };",
			line: 4, column: 36,
			message: `syntax error near ";": invalid primary`,
		},
		{
			name: "missing comma",
			src:  ok + "permit(principal\n  action, resource);",
			line: 4, column: 9,
			message: `syntax error: expected ",", got "action"`,
		},
		{
			name: "bad effect",
			src:  ok + "  allow(principal, action, resource);",
			line: 3, column: 8,
			message: "unexpected effect: allow",
		},
		{
			name: "missing semicolon at end",
			src:  ok + "permit(principal, action, resource)\n",
			line: 4, column: 1,
			message: `syntax error: expected ";", got end of input`,
		},
		{
			name: "unknown entity type",
			src:  ok + `permit(principal == Agnet::"x", action, resource);`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unrecognized entity type `Agnet`",
		},
		{
			name: "unknown entity type in condition",
			src:  ok + `permit(principal, action, resource) when { principal in Taem::"x" };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unrecognized entity type `Taem`",
		},
		{
			name: "unknown action",
			src:  ok + `@id("typo") permit(principal, action == Action::"pay__sned", resource);`,
			line: 3, column: 1, policyID: "main/typo",
			message: "unrecognized action `Action::\"pay__sned\"`",
		},
		{
			name: "argument the tool does not have",
			src:  ok + `permit(principal, action == Action::"github__create_issue", resource) when { context.arguments.amount < 5 };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "attribute `amount` in context for Action::\"github__create_issue\" not found",
		},
		{
			name: "argument left out as untypeable",
			src:  ok + `permit(principal, action == Action::"pay__send", resource) when { context.arguments.choice == "a" };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "attribute `choice` in context for Action::\"pay__send\" not found",
		},
		{
			name: "string compared with less-than",
			src:  ok + `permit(principal, action == Action::"pay__send", resource) when { context.arguments.currency < "EUR" };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unexpected type",
		},
		{
			name: "decimal compared with less-than",
			src:  ok + `permit(principal, action == Action::"pay__send", resource) when { context.arguments.price < 10 };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unexpected type",
		},
		{
			name: "optional argument without has",
			src:  ok + `permit(principal, action == Action::"pay__send", resource) when { context.arguments.memo == "rent" };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unable to guarantee safety of access to optional attribute `arguments.memo`",
		},
		{
			name: "optional user without has",
			src:  ok + `permit(principal, action == Action::"pay__send", resource) when { context.user in Group::"finance" };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unable to guarantee safety of access to optional attribute `user`",
		},
		{
			name: "tag without hasTag",
			src:  ok + `permit(principal, action, resource) when { principal.getTag("env") == "prod" };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unable to guarantee safety of access to tag",
		},
		{
			name: "group-wide argument without has",
			src:  ok + `forbid(principal, action in Action::"call_tool", resource) when { context.arguments.amount > 1000 };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "must guard tool arguments with `has`",
		},
		{
			name: "the group itself as action",
			src:  ok + `permit(principal, action == Action::"call_tool", resource);`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unable to find an applicable action",
		},
		{
			name: "placeholder named in scope",
			src:  ok + `permit(principal, action == Action::"portcullis:placeholder", resource);`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "is reserved",
		},
		{
			name: "placeholder named in condition",
			src:  ok + `permit(principal, action, resource) when { action in [Action::"portcullis:placeholder"] };`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "is reserved",
		},
		{
			name: "principal of wrong type",
			src:  ok + `permit(principal is User, action in Action::"call_tool", resource);`,
			line: 3, column: 1, policyID: "main/policy1",
			message: "unable to find an applicable action",
		},
		{
			name: "position is the annotation start",
			src:  ok + "// the bad one\n  @id(\"bad\")\n  permit(principal, action, resource) when { context.nope };",
			line: 4, column: 3, policyID: "main/bad",
			message: "attribute `nope` in context",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ParsePolicies("main", "main.cedar", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParsePolicies accepted:\n%s", tt.src)
			}
			want := cedarschema.Position{Filename: "main.cedar", Line: tt.line, Column: tt.column}
			found := false
			for _, d := range diagnostics(t, err) {
				if d.Position != want {
					t.Errorf("position = %+v, want %+v (error: %v)", d.Position, want, err)
				}
				if d.PolicyID != tt.policyID {
					t.Errorf("policy id = %q, want %q", d.PolicyID, tt.policyID)
				}
				found = found || strings.Contains(d.Message, tt.message)
			}
			if !found {
				t.Errorf("no diagnostic contains %q:\n%v", tt.message, err)
			}
			if prefix := want.String() + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("Error() = %q, want prefix %q", err, prefix)
			}
		})
	}
}

func TestParsePoliciesIDsAndPositions(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	src := `permit(principal in Team::"payments", action in Action::"call_tool", resource);

@id("cap")
@reason("big payments need a human")
forbid(principal, action == Action::"pay__send", resource)
  when { context.arguments.amount > 500 };

    permit(principal, action, resource) when { context.protocol == "mcp" };
`
	set, err := s.ParsePolicies("payments", "policies/payments.cedar", []byte(src))
	if err != nil {
		t.Fatalf("ParsePolicies: %v", err)
	}
	want := []struct {
		id     string
		effect string
		line   int
		column int
	}{
		{id: "payments/policy0", effect: "permit", line: 1, column: 1},
		{id: "payments/cap", effect: "forbid", line: 3, column: 1},
		{id: "payments/policy2", effect: "permit", line: 8, column: 5},
	}
	if len(set.Policies) != len(want) {
		t.Fatalf("got %d policies, want %d", len(set.Policies), len(want))
	}
	for i, w := range want {
		p := set.Policies[i]
		if p.ID != w.id || p.Effect != w.effect {
			t.Errorf("policy %d = %s %s, want %s %s", i, p.ID, p.Effect, w.id, w.effect)
		}
		pos := cedarschema.Position{Filename: "policies/payments.cedar", Line: w.line, Column: w.column}
		if p.Position != pos {
			t.Errorf("policy %d position = %+v, want %+v", i, p.Position, pos)
		}
		if p.Policy == nil {
			t.Errorf("policy %d has no cedar policy", i)
		} else if got := p.Policy.Position().Filename; got != pos.Filename {
			t.Errorf("policy %d cedar filename = %q, want %q", i, got, pos.Filename)
		}
	}
}

func TestParsePoliciesDuplicateIDs(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	tests := []struct {
		name    string
		src     string
		line    int
		id      string
		message string
	}{
		{
			name: "same annotation twice",
			src:  "@id(\"a\")\npermit(principal, action, resource);\n@id(\"a\")\nforbid(principal, action, resource);",
			line: 3, id: "main/a",
			message: "duplicate policy id, first used at main.cedar:1:1",
		},
		{
			name: "annotation equal to a generated id",
			src:  "@id(\"policy1\")\npermit(principal, action, resource);\nforbid(principal, action, resource);",
			line: 3, id: "main/policy1",
			message: "duplicate policy id",
		},
		{
			name: "empty annotation",
			src:  "permit(principal, action, resource);\n@id(\"\")\nforbid(principal, action, resource);",
			line: 2, id: "main/",
			message: "empty @id",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ParsePolicies("main", "main.cedar", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParsePolicies accepted:\n%s", tt.src)
			}
			diags := diagnostics(t, err)
			if len(diags) != 1 {
				t.Fatalf("got %d diagnostics, want 1: %v", len(diags), err)
			}
			d := diags[0]
			if d.Position.Line != tt.line || d.PolicyID != tt.id || !strings.Contains(d.Message, tt.message) {
				t.Errorf("diagnostic = %+v, want line %d, id %q, message containing %q", d, tt.line, tt.id, tt.message)
			}
		})
	}
}

func TestParsePoliciesReportsEveryProblem(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	src := "permit(principal == Agnet::\"x\", action, resource);\n" +
		"permit(principal, action, resource);\n" +
		"@id(\"memo\") permit(principal, action == Action::\"pay__send\", resource) when { context.arguments.memo == \"x\" };\n"
	_, err := s.ParsePolicies("main", "main.cedar", []byte(src))
	want := "main.cedar:1:1: policy main/policy0: unrecognized entity type `Agnet`\n" +
		"main.cedar:1:1: policy main/policy0: unable to find an applicable action given the policy scope constraints\n" +
		"main.cedar:3:1: policy main/memo: unable to guarantee safety of access to optional attribute `arguments.memo` in context for Action::\"pay__send\""
	if err == nil || err.Error() != want {
		t.Errorf("Error() =\n%v\nwant\n%s", err, want)
	}
}

func TestParsePoliciesRejectsBadSetNames(t *testing.T) {
	s := mustGenerate(t, nil)
	tests := []struct {
		name    string
		setName string
	}{
		{name: "empty", setName: ""},
		{name: "slash", setName: "a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.ParsePolicies(tt.setName, "x.cedar", nil); err == nil {
				t.Errorf("ParsePolicies accepted set name %q", tt.setName)
			}
		})
	}
}

// A fresh gateway has no tool pinned; allowlists over the call_tool group
// must still be accepted, and argument checks must still be refused.
func TestParsePoliciesBeforeAnyToolIsPinned(t *testing.T) {
	s := mustGenerate(t, nil)
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{name: "allowlist by team", src: `permit(principal in Team::"payments", action in Action::"call_tool", resource);`},
		{name: "whole group", src: `permit(principal, action in Action::"call_tool", resource);`},
		{name: "group with context condition", src: `forbid(principal, action in Action::"call_tool", resource) unless { context.time.toTime() < duration("18h") };`},
		{name: "guarded argument", src: `forbid(principal, action in Action::"call_tool", resource) when { context.arguments has amount && context.arguments.amount > 5 };`},
		{name: "unguarded argument", src: `forbid(principal, action in Action::"call_tool", resource) when { context.arguments.amount > 5 };`, wantErr: "attribute `amount`"},
		{name: "tool not pinned yet", src: `permit(principal, action == Action::"pay__send", resource);`, wantErr: "unrecognized action"},
		{name: "placeholder", src: `permit(principal, action == Action::"portcullis:placeholder", resource);`, wantErr: "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ParsePolicies("main", "main.cedar", []byte(tt.src))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("accepted, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
