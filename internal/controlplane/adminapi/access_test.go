package adminapi_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// accessPolicies: team payments may call pay__send; nobody may send 500 or
// more; finance users may have anyone read the balance.
const accessPolicies = `@id("team")
permit(principal in Team::"payments", action in Action::"call_tool", resource);
@id("cap")
forbid(principal, action == Action::"pay__send", resource)
when { context.arguments.amount >= 500 };
@id("finance")
permit(principal, action == Action::"pay__balance", resource)
when { context has user && context.user in Group::"finance" };
@id("no-exfil")
forbid(principal, action, resource) when { context.findings.contains("exfiltration") };
`

// accessFixture is a node with upstream "pay" (tools send and balance),
// agents payer (team payments), marketer (team marketing) and the disabled
// retired (team payments), and accessPolicies.
func accessFixture(t *testing.T) (*node, adminv1connect.AccessServiceClient) {
	t.Helper()
	n := startNode(t)
	if _, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "pay"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "http://127.0.0.1:9/mcp",
	}})); err != nil {
		t.Fatal(err)
	}
	for tool, def := range map[string]string{
		"send":    `{"name":"send","inputSchema":{"type":"object","properties":{"amount":{"type":"integer"},"to":{"type":"string"}},"required":["amount","to"]}}`,
		"balance": `{"name":"balance","inputSchema":{"type":"object"}}`,
	} {
		if _, err := n.tools.PinTool(ctx(t), req(n.admin, &adminv1.PinToolRequest{Upstream: "pay", Tool: tool, Definition: []byte(def), Class: configv1.ToolClass_TOOL_CLASS_MUTATING})); err != nil {
			t.Fatalf("pin %s: %v", tool, err)
		}
	}
	for _, a := range []*configv1.Agent{
		{Meta: &configv1.ResourceMeta{Name: "payer"}, Team: "payments"},
		{Meta: &configv1.ResourceMeta{Name: "marketer"}, Team: "marketing"},
		{Meta: &configv1.ResourceMeta{Name: "retired"}, Team: "payments", Disabled: true},
	} {
		if _, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: a, NoApiKey: true})); err != nil {
			t.Fatalf("create agent %s: %v", a.GetMeta().GetName(), err)
		}
	}
	if _, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "payments", Source: accessPolicies})); err != nil {
		t.Fatal(err)
	}
	return n, adminv1connect.NewAccessServiceClient(n.hc, n.base)
}

func tool(id string) *adminv1.AccessResource { return &adminv1.AccessResource{Type: "Tool", Id: id} }

func TestCheckExplainsDecisions(t *testing.T) {
	n, access := accessFixture(t)
	finance := &adminv1.AccessUser{Source: "corp", Name: "alice", Groups: []string{"finance"}}
	tests := []struct {
		name         string
		req          *adminv1.CheckRequest
		wantAllowed  bool
		wantPolicies []string // "id effect line" (a policy starts at its annotations)
		wantError    string
		wantInvalid  bool
	}{
		{name: "permitted by the team rule",
			req:         &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__send"), ArgumentsJson: `{"amount": 100, "to": "acme"}`},
			wantAllowed: true, wantPolicies: []string{"payments/team permit 1"}},
		{name: "forbidden by the cap, action given",
			req:          &adminv1.CheckRequest{Agent: "payer", Action: "pay__send", Resource: tool("pay__send"), ArgumentsJson: `{"amount": 900, "to": "acme"}`},
			wantPolicies: []string{"payments/cap forbid 3"}},
		{name: "default deny",
			req: &adminv1.CheckRequest{Agent: "marketer", Resource: tool("pay__send"), ArgumentsJson: `{"amount": 1, "to": "acme"}`}},
		{name: "on behalf of a finance user",
			req:         &adminv1.CheckRequest{Agent: "marketer", User: finance, Resource: &adminv1.AccessResource{Id: "pay__balance"}},
			wantAllowed: true, wantPolicies: []string{"payments/finance permit 6"}},
		{name: "disabled agent: a deny with the reason",
			req:       &adminv1.CheckRequest{Agent: "retired", Resource: tool("pay__balance")},
			wantError: `agent "retired" is not an enabled agent`},
		{name: "arguments that do not fit",
			req:       &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__send"), ArgumentsJson: `{"amount": "lots", "to": "acme"}`},
			wantError: "arguments/amount: want integer, got string", wantInvalid: true},
		{name: "context as given",
			req: &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__send"), ArgumentsJson: `{"amount": 1, "to": "acme"}`,
				Time: timestamppb.New(time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)), SourceIp: "10.1.2.3", Protocol: "mcp", Degraded: true},
			wantAllowed: true, wantPolicies: []string{"payments/team permit 1"}},
		{name: "inspection findings",
			req:          &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__send"), ArgumentsJson: `{"amount": 1, "to": "acme"}`, Findings: []string{"exfiltration", "exfiltration.data_uri"}},
			wantPolicies: []string{"payments/no-exfil forbid 9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := access.Check(ctx(t), req(n.admin, tt.req))
			if err != nil {
				t.Fatal(err)
			}
			got := res.Msg
			var policies []string
			for _, p := range got.GetPolicies() {
				policies = append(policies, fmt.Sprintf("%s %s %d", p.GetId(), p.GetEffect(), p.GetLine()))
				if p.GetFile() != "payments.cedar" || p.GetColumn() != 1 {
					t.Errorf("position %s:%d:%d, want payments.cedar:_:1", p.GetFile(), p.GetLine(), p.GetColumn())
				}
			}
			if got.GetAllowed() != tt.wantAllowed || !slices.Equal(policies, tt.wantPolicies) || got.GetInvalidArguments() != tt.wantInvalid {
				t.Errorf("answer = %v, want allowed %v by %q, invalid arguments %v", got, tt.wantAllowed, tt.wantPolicies, tt.wantInvalid)
			}
			switch {
			case tt.wantError == "" && len(got.GetErrors()) > 0:
				t.Errorf("errors = %q, want none", got.GetErrors())
			case tt.wantError != "" && (len(got.GetErrors()) != 1 || !strings.Contains(got.GetErrors()[0], tt.wantError)):
				t.Errorf("errors = %q, want one containing %q", got.GetErrors(), tt.wantError)
			}
			if got.GetConfigVersion() == 0 {
				t.Error("no configuration version")
			}
		})
	}
}

func TestAccessQuestionsAboutNothingAreErrors(t *testing.T) {
	n, access := accessFixture(t)
	tests := []struct {
		name     string
		req      *adminv1.CheckRequest
		code     connect.Code
		fragment string
	}{
		{name: "unknown agent", req: &adminv1.CheckRequest{Agent: "nobody", Resource: tool("pay__send")},
			code: connect.CodeNotFound, fragment: `no agent "nobody"`},
		{name: "unknown tool", req: &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__steal")},
			code: connect.CodeNotFound, fragment: `no tool "pay__steal"`},
		{name: "unknown resource type", req: &adminv1.CheckRequest{Agent: "payer", Resource: &adminv1.AccessResource{Type: "Model", Id: "gpt"}},
			code: connect.CodeNotFound, fragment: `resource type "Model"`},
		{name: "no resource", req: &adminv1.CheckRequest{Agent: "payer"},
			code: connect.CodeInvalidArgument, fragment: "resource.id is required"},
		{name: "action of another tool", req: &adminv1.CheckRequest{Agent: "payer", Action: "pay__balance", Resource: tool("pay__send")},
			code: connect.CodeInvalidArgument, fragment: `action "pay__balance" does not apply to tool "pay__send"`},
		{name: "user without a source", req: &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__send"), User: &adminv1.AccessUser{Name: "alice"}},
			code: connect.CodeInvalidArgument, fragment: "user needs a source"},
		{name: "too many groups", req: &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__send"), User: &adminv1.AccessUser{Source: "corp", Name: "alice", Groups: make([]string, 257)}},
			code: connect.CodeInvalidArgument, fragment: "257 groups"},
		{name: "bad source address", req: &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__send"), SourceIp: "10.1.2"},
			code: connect.CodeInvalidArgument, fragment: "source_ip"},
		{name: "long agent name", req: &adminv1.CheckRequest{Agent: strings.Repeat("a", 2000), Resource: tool("pay__send")},
			code: connect.CodeInvalidArgument, fragment: "agent is 2000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := access.Check(ctx(t), req(n.admin, tt.req))
			wantCode(t, err, tt.code, tt.fragment)
		})
	}
	_, err := access.WhoCan(ctx(t), req(n.admin, &adminv1.WhoCanRequest{Resource: tool("pay__steal")}))
	wantCode(t, err, connect.CodeNotFound, `no tool "pay__steal"`)
}

func TestWhoCan(t *testing.T) {
	n, access := accessFixture(t)
	tests := []struct {
		name string
		req  *adminv1.WhoCanRequest
		want []string
	}{
		{name: "team rule", req: &adminv1.WhoCanRequest{Resource: tool("pay__send")}, want: []string{"payer"}},
		{name: "finance user opens the balance to every enabled agent",
			req:  &adminv1.WhoCanRequest{Resource: tool("pay__balance"), User: &adminv1.AccessUser{Source: "corp", Name: "alice", Groups: []string{"finance"}}},
			want: []string{"marketer", "payer"}},
		{name: "other user", req: &adminv1.WhoCanRequest{Resource: tool("pay__balance"), User: &adminv1.AccessUser{Source: "corp", Name: "bob"}},
			want: []string{"payer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := access.WhoCan(ctx(t), req(n.admin, tt.req))
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Msg.GetAgents(); !slices.Equal(got, tt.want) || res.Msg.GetConfigVersion() == 0 {
				t.Errorf("who-can = %v at version %d, want %v", got, res.Msg.GetConfigVersion(), tt.want)
			}
		})
	}

	// A write is answered at the new version: the marketing team gains
	// the tool.
	if _, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "marketing",
		Source: `permit(principal in Team::"marketing", action == Action::"pay__send", resource);`})); err != nil {
		t.Fatal(err)
	}
	res, err := access.WhoCan(ctx(t), req(n.admin, &adminv1.WhoCanRequest{Resource: tool("pay__send")}, "Portcullis-Consistency", "linearizable"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Msg.GetAgents(), []string{"marketer", "payer"}; !slices.Equal(got, want) {
		t.Errorf("after the write, who-can = %v, want %v", got, want)
	}
}

func TestAccessRoles(t *testing.T) {
	n, access := accessFixture(t)
	auditor, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
	check := &adminv1.CheckRequest{Agent: "payer", Resource: tool("pay__balance")}
	who := &adminv1.WhoCanRequest{Resource: tool("pay__balance")}
	if _, err := access.Check(ctx(t), req(auditor, check)); err != nil {
		t.Errorf("auditor Check: %v", err)
	}
	if _, err := access.WhoCan(ctx(t), req(auditor, who)); err != nil {
		t.Errorf("auditor WhoCan: %v", err)
	}
	// A data plane's token is for syncing and uploading, not for asking.
	dps := adminv1connect.NewDataplaneServiceClient(n.hc, n.base)
	jc, err := dps.CreateJoinCredential(ctx(t), req(n.admin, &adminv1.CreateJoinCredentialRequest{Name: "dp1"}))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := joincred.Parse(jc.Msg.GetCredential())
	if err != nil {
		t.Fatal(err)
	}
	_, err = access.Check(ctx(t), req(cred.Token, check))
	wantCode(t, err, connect.CodePermissionDenied, "lacks role auditor")
	_, err = access.Check(ctx(t), req("", check))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = access.WhoCan(ctx(t), req("", who))
	wantCode(t, err, connect.CodeUnauthenticated)
}
