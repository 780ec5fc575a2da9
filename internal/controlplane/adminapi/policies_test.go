package adminapi_test

import (
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

const permitAll = "permit(principal, action in Action::\"call_tool\", resource);\n"

func amountPolicy(action string) string {
	return "@id(\"cap\")\nforbid(principal, action == Action::\"" + action + "\", resource)\nwhen { context.arguments.amount > 500 };\n"
}

func TestApplyPolicySetRefusesInvalidCedar(t *testing.T) {
	n := startNode(t)
	tests := []struct {
		name     string
		req      *adminv1.ApplyPolicySetRequest
		position string // regular expression for file:line:col
		fragment string
	}{
		{
			name:     "syntax error",
			req:      &adminv1.ApplyPolicySetRequest{Name: "bad-syntax", Source: "permit(principal, action, resource)\nwhen { context.arguments.amount > };\n"},
			position: `bad-syntax\.cedar:2:\d+`, fragment: "syntax error",
		},
		{
			name:     "unterminated string",
			req:      &adminv1.ApplyPolicySetRequest{Name: "bad-string", Source: "permit(principal == Agent::\"x, action, resource);"},
			position: `bad-string\.cedar:1:\d+`, fragment: "syntax error",
		},
		{
			name:     "unknown action",
			req:      &adminv1.ApplyPolicySetRequest{Name: "bad-action", Source: amountPolicy("nope__tool")},
			position: `bad-action\.cedar:\d+:\d+`, fragment: "policy bad-action/cap",
		},
		{
			name:     "unknown entity type",
			req:      &adminv1.ApplyPolicySetRequest{Name: "bad-type", Source: "permit(principal == Robot::\"r2\", action in Action::\"call_tool\", resource);"},
			position: `bad-type\.cedar:1:1`, fragment: "policy bad-type/policy0",
		},
		{
			name:     "file name from the request",
			req:      &adminv1.ApplyPolicySetRequest{Name: "named", Filename: "team/payments.cedar", Source: "forbid(principal, action, resource"},
			position: `team/payments\.cedar:1:\d+`, fragment: "syntax error",
		},
		{
			name:     "dry run",
			req:      &adminv1.ApplyPolicySetRequest{Name: "dry", DryRun: true, Source: "permit(principal, action, resource) when { 1 + };"},
			position: `dry\.cedar:1:\d+`, fragment: "syntax error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, tt.req))
			wantCode(t, err, connect.CodeInvalidArgument, tt.fragment)
			if msg := connect.CodeOf(err).String() + " " + err.Error(); !regexp.MustCompile(tt.position).MatchString(msg) {
				t.Errorf("message %q has no position matching %q", msg, tt.position)
			}
			_, err = n.policies.GetPolicySet(ctx(t), req(n.admin, &adminv1.GetPolicySetRequest{Name: tt.req.GetName()}))
			wantCode(t, err, connect.CodeNotFound)
		})
	}

	t.Run("refused update keeps the old version", func(t *testing.T) {
		res, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "keep", Source: permitAll}))
		if err != nil {
			t.Fatal(err)
		}
		if v := res.Msg.GetPolicySet().GetVersion(); v != 1 {
			t.Fatalf("first version = %d, want 1", v)
		}
		_, err = n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "keep", Source: permitAll + "forbid("}))
		wantCode(t, err, connect.CodeInvalidArgument, "keep.cedar:2:")
		got, err := n.policies.GetPolicySet(ctx(t), req(n.admin, &adminv1.GetPolicySetRequest{Name: "keep"}))
		if err != nil {
			t.Fatal(err)
		}
		if ps := got.Msg.GetPolicySet(); ps.GetVersion() != 1 || ps.GetSource() != permitAll || ps.GetMeta().GetRevision() != res.Msg.GetPolicySet().GetMeta().GetRevision() {
			t.Fatalf("after a refused update: version %d revision %d source %q; want the first version kept", ps.GetVersion(), ps.GetMeta().GetRevision(), ps.GetSource())
		}
	})
}

func TestOversizedRequest(t *testing.T) {
	n := startNode(t)
	tests := []struct {
		name     string
		size     int
		code     connect.Code
		fragment string
	}{
		// Over the API's 4 MiB read limit: refused while reading.
		{name: "5 MiB", size: 5 << 20, code: connect.CodeResourceExhausted},
		// Under the read limit but over the 1 MiB limit of a policy source.
		{name: "2 MiB", size: 2 << 20, code: connect.CodeInvalidArgument, fragment: "source: at most 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "// " + strings.Repeat("x", tt.size) + "\n" + permitAll
			_, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "huge", Source: src}))
			wantCode(t, err, tt.code, tt.fragment)
			_, err = n.policies.GetPolicySet(ctx(t), req(n.admin, &adminv1.GetPolicySetRequest{Name: "huge"}))
			wantCode(t, err, connect.CodeNotFound)
		})
	}
}

// TestPolicyOnToolArguments: a policy reading context.arguments.amount is
// accepted once a tool with an integer amount is pinned, and a later pin
// that makes amount a string is refused while the policy is enabled.
func TestPolicyOnToolArguments(t *testing.T) {
	n := startNode(t)
	def := func(amountType string) []byte {
		return []byte(`{"name":"send","description":"Send money","inputSchema":{"type":"object","properties":{"amount":{"type":"` + amountType + `"},"to":{"type":"string"}},"required":["amount","to"]}}`)
	}
	pin := func(amountType string) *connect.Request[adminv1.PinToolRequest] {
		return req(n.admin, &adminv1.PinToolRequest{Upstream: "pay", Tool: "send", Definition: def(amountType), Class: configv1.ToolClass_TOOL_CLASS_MUTATING})
	}
	apply := func(disabled bool) (*connect.Response[adminv1.ApplyPolicySetResponse], error) {
		return n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "limits", Source: amountPolicy("pay__send"), Disabled: disabled}))
	}

	if _, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "pay"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "http://127.0.0.1:9/mcp",
	}})); err != nil {
		t.Fatal(err)
	}
	_, err := apply(false)
	wantCode(t, err, connect.CodeInvalidArgument, "limits.cedar:", "policy limits/cap")

	first, err := n.tools.PinTool(ctx(t), pin("integer"))
	if err != nil {
		t.Fatalf("pin with integer amount: %v", err)
	}
	ps, err := apply(false)
	if err != nil {
		t.Fatalf("policy on context.arguments.amount after the pin: %v", err)
	}
	if ids := ps.Msg.GetPolicySet().GetPolicyIds(); len(ids) != 1 || ids[0] != "limits/cap" {
		t.Fatalf("policy ids = %v, want [limits/cap]", ids)
	}
	schema, err := n.policies.GetCedarSchema(ctx(t), req(n.admin, &adminv1.GetCedarSchemaRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if c := schema.Msg.GetCedar(); !strings.Contains(c, "pay__send") || !strings.Contains(c, "amount") {
		t.Fatalf("schema lacks the pinned tool:\n%s", c)
	}

	_, err = n.tools.PinTool(ctx(t), pin("string"))
	wantCode(t, err, connect.CodeFailedPrecondition, "would break an enabled policy set", "limits.cedar:", "policy limits/cap")
	got, err := n.tools.GetToolPin(ctx(t), req(n.admin, &adminv1.GetToolPinRequest{Upstream: "pay", Tool: "send"}))
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Msg.GetPin(); len(p.GetVersions()) != 1 || p.GetActiveVersion() != 1 || p.GetMeta().GetRevision() != first.Msg.GetPin().GetMeta().GetRevision() {
		t.Fatalf("pin after the refused change: %d versions, active %d; want the first kept", len(p.GetVersions()), p.GetActiveVersion())
	}

	// A disabled set does not hold the pin back.
	if _, err := apply(true); err != nil {
		t.Fatalf("disable the set: %v", err)
	}
	second, err := n.tools.PinTool(ctx(t), pin("string"))
	if err != nil {
		t.Fatalf("pin with only a disabled set: %v", err)
	}
	if v := second.Msg.GetPin().GetActiveVersion(); v != 2 {
		t.Fatalf("active version = %d, want 2", v)
	}
	// Enabling the set again is refused: amount is now a string.
	_, err = apply(false)
	wantCode(t, err, connect.CodeInvalidArgument, "limits.cedar:", "policy limits/cap")
}
