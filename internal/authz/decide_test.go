package authz_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestDecide(t *testing.T) {
	e := authztest.Compile(t, authztest.Snapshot())
	payer, marketer, retired := authztest.Payer, authztest.Marketer, authztest.Retired

	tests := []struct {
		name         string
		agent        string
		action       string
		args         string
		wantAllowed  bool
		wantPolicies []string
		wantError    string // substring of the only error; "" means no errors
	}{
		{name: "small payment", agent: payer, action: authztest.PayAction, args: `{"amount": 100, "to": "bob"}`,
			wantAllowed: true, wantPolicies: []string{"payments/policy0"}},
		{name: "large payment forbidden", agent: payer, action: authztest.PayAction, args: `{"amount": 900, "to": "bob"}`,
			wantPolicies: []string{"payments/policy1"}},
		{name: "at the cap forbidden", agent: payer, action: authztest.PayAction, args: `{"amount": 500, "to": "bob"}`,
			wantPolicies: []string{"payments/policy1"}},
		{name: "integral number in exponent form is an integer", agent: payer, action: authztest.PayAction, args: `{"amount": 9e2, "to": "bob"}`,
			wantPolicies: []string{"payments/policy1"}},
		{name: "integral number with a fraction part is an integer", agent: payer, action: authztest.PayAction, args: `{"amount": 900.0, "to": "bob"}`,
			wantPolicies: []string{"payments/policy1"}},
		{name: "untyped argument dropped", agent: payer, action: authztest.PayAction, args: `{"amount": 100, "to": "bob", "memo": "rent"}`,
			wantAllowed: true, wantPolicies: []string{"payments/policy0"}},
		{name: "read-only tool without arguments", agent: payer, action: authztest.BalanceAction, args: ``,
			wantAllowed: true, wantPolicies: []string{"payments/policy0"}},
		{name: "null arguments", agent: payer, action: authztest.BalanceAction, args: `null`,
			wantAllowed: true, wantPolicies: []string{"payments/policy0"}},
		{name: "other team denied by default", agent: marketer, action: authztest.PayAction, args: `{"amount": 100, "to": "bob"}`},
		{name: "string for an integer", agent: payer, action: authztest.PayAction, args: `{"amount": "900", "to": "bob"}`,
			wantError: "arguments/amount: want integer, got string"},
		{name: "fraction for an integer", agent: payer, action: authztest.PayAction, args: `{"amount": 899.5, "to": "bob"}`,
			wantError: "arguments/amount: want integer, got number"},
		{name: "null for an integer", agent: payer, action: authztest.PayAction, args: `{"amount": null, "to": "bob"}`,
			wantError: "arguments/amount: want integer, got null"},
		{name: "integer beyond 64 bits", agent: payer, action: authztest.PayAction, args: `{"amount": 9223372036854775808, "to": "bob"}`,
			wantError: "arguments/amount: integer outside the 64-bit range"},
		{name: "absurd exponent", agent: payer, action: authztest.PayAction, args: `{"amount": 1e999999999, "to": "bob"}`,
			wantError: "arguments/amount: number too large or too small"},
		{name: "required argument missing", agent: payer, action: authztest.PayAction, args: `{"to": "bob"}`,
			wantError: "arguments/amount: required argument missing"},
		{name: "duplicate key", agent: payer, action: authztest.PayAction, args: `{"amount": 100, "to": "bob", "amount": 900}`,
			wantError: `arguments: duplicate key "amount"`},
		{name: "arguments not an object", agent: payer, action: authztest.PayAction, args: `[100, "bob"]`,
			wantError: "arguments: want object, got array"},
		{name: "arguments not JSON", agent: payer, action: authztest.PayAction, args: `{"amount": 100,`,
			wantError: "arguments are not valid JSON"},
		{name: "trailing data", agent: payer, action: authztest.PayAction, args: `{"amount": 100, "to": "bob"} {}`,
			wantError: "arguments are not valid JSON"},
		{name: "no agent", agent: "", action: authztest.PayAction, args: `{"amount": 100, "to": "bob"}`,
			wantError: "no authenticated agent"},
		{name: "disabled agent", agent: retired, action: authztest.PayAction, args: `{"amount": 100, "to": "bob"}`,
			wantError: `agent "retired" is not an enabled agent`},
		{name: "unknown tool", agent: payer, action: "pay__steal", args: `{}`,
			wantError: `no tool "pay__steal"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(context.Background(), newRequest(tt.agent, tt.action, tt.args))
			if d.Allowed != tt.wantAllowed {
				t.Errorf("Allowed = %v, want %v (decision %+v)", d.Allowed, tt.wantAllowed, d)
			}
			if !slices.Equal(d.Policies, tt.wantPolicies) {
				t.Errorf("Policies = %q, want %q", d.Policies, tt.wantPolicies)
			}
			switch {
			case tt.wantError == "" && len(d.Errors) > 0:
				t.Errorf("Errors = %q, want none", d.Errors)
			case tt.wantError != "" && (len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tt.wantError)):
				t.Errorf("Errors = %q, want one containing %q", d.Errors, tt.wantError)
			}
			for _, e := range d.Errors {
				if strings.Contains(e, "900") {
					t.Errorf("error %q echoes an argument value", e)
				}
			}
		})
	}
}

// contextPolicies each test one part of the request the gateway builds.
const contextPolicies = `@id("tag")
permit(principal, action, resource) when { principal.hasTag("env") && principal.getTag("env") == "prod" };
@id("agent")
permit(principal, action, resource) when { principal.name == "payer" && principal.owner == "alice" };
@id("tool")
permit(principal, action == Action::"pay__balance", resource in Upstream::"pay")
  when { resource.name == "balance" && resource.readOnly && resource.version == 1 && resource == Tool::"pay__balance" };
@id("upstream")
permit(principal, action, resource) when { resource in Upstream::"pay" };
@id("protocol")
permit(principal, action, resource) when { context.protocol == "mcp" };
@id("source")
permit(principal, action, resource) when { context.sourceIp.isInRange(ip("10.0.0.0/8")) };
@id("afternoon")
permit(principal, action, resource) when { context.time.toTime() >= duration("12h") };
@id("degraded")
permit(principal, action, resource) when { context.degraded };
@id("findings")
permit(principal, action, resource) when { context.findings.contains("pii.email") };
`

func TestDecideContext(t *testing.T) {
	s := authztest.Snapshot()
	s.PolicySets[0].Source = contextPolicies
	e := authztest.Compile(t, s)
	payer := authztest.Payer
	all := []string{"payments/afternoon", "payments/agent", "payments/protocol", "payments/source", "payments/tag", "payments/tool", "payments/upstream"}

	tests := []struct {
		name string
		edit func(*authz.Request)
		want []string
	}{
		{name: "as built", edit: func(*authz.Request) {}, want: all},
		{name: "degraded", edit: func(r *authz.Request) { r.Context.Degraded = true }, want: append(slices.Clone(all), "payments/degraded")},
		{name: "IPv4-mapped source", edit: func(r *authz.Request) { r.Context.SourceIP = netip.MustParseAddr("::ffff:10.1.2.3") }, want: all},
		{name: "outside source range", edit: func(r *authz.Request) { r.Context.SourceIP = netip.MustParseAddr("192.0.2.1") }, want: without(all, "payments/source")},
		{name: "morning", edit: func(r *authz.Request) { r.Context.Time = callAt.Add(-2 * time.Hour) }, want: without(all, "payments/afternoon")},
		{name: "other protocol", edit: func(r *authz.Request) { r.Context.Protocol = "a2a" }, want: without(all, "payments/protocol")},
		{name: "findings", edit: func(r *authz.Request) { r.Context.Findings = []string{"pii", "pii.email"} }, want: append(slices.Clone(all), "payments/findings")},
		{name: "other findings", edit: func(r *authz.Request) { r.Context.Findings = []string{"pii", "pii.iban"} }, want: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(payer, authztest.BalanceAction, `{}`)
			tt.edit(req)
			d := e.Decide(context.Background(), req)
			want := slices.Sorted(slices.Values(tt.want))
			if !d.Allowed || !slices.Equal(d.Policies, want) || len(d.Errors) > 0 {
				t.Errorf("decision = %+v, want allowed by %q", d, want)
			}
		})
	}
}

func TestDecideRefusesIncompleteCalls(t *testing.T) {
	e := authztest.Compile(t, authztest.Snapshot())
	payer := authztest.Payer
	tests := []struct {
		name string
		edit func(*authz.Request)
		want string
	}{
		{name: "no source address", edit: func(r *authz.Request) { r.Context.SourceIP = netip.Addr{} }, want: "no source address"},
		{name: "no start time", edit: func(r *authz.Request) { r.Context.Time = time.Time{} }, want: "no start time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(payer, authztest.BalanceAction, `{}`)
			tt.edit(req)
			d := e.Decide(context.Background(), req)
			if d.Allowed || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tt.want) {
				t.Errorf("decision = %+v, want a denial with an error containing %q", d, tt.want)
			}
		})
	}
}

// quoteSchema types every kind of argument Cedar can hold.
const quoteSchema = `{
	"type": "object",
	"properties": {
		"price":     {"type": "number"},
		"urgent":    {"type": "boolean"},
		"tags":      {"type": "array", "items": {"type": "string"}},
		"recipient": {"type": "object", "properties": {"iban": {"type": "string"}}, "required": ["iban"]},
		"meta":      {"type": "object", "additionalProperties": {"type": "string"}}
	},
	"required": ["price"]
}`

const quotePolicies = `permit(principal, action, resource);
@id("expensive")
forbid(principal, action == Action::"pay__quote", resource) when { context.arguments.price.greaterThan(decimal("10.5")) };
@id("blocked")
forbid(principal, action == Action::"pay__quote", resource) when { context.arguments has tags && context.arguments.tags.contains("blocked") };
@id("urgent")
forbid(principal, action == Action::"pay__quote", resource) when { context.arguments has urgent && context.arguments.urgent };
@id("iban")
forbid(principal, action == Action::"pay__quote", resource) when { context.arguments has recipient && context.arguments.recipient.iban like "XX*" };
`

func TestDecideArgumentTypes(t *testing.T) {
	s := authztest.Snapshot()
	s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
		Meta: &configv1.ResourceMeta{Name: "pay/quote"}, Upstream: "pay", Tool: "quote",
		Versions: []*configv1.ToolVersion{{Version: 1, InputSchema: []byte(quoteSchema), Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY}},
	})
	s.PolicySets = []*configv1.PolicySet{{Meta: &configv1.ResourceMeta{Name: "quotes"}, Source: quotePolicies}}
	e := authztest.Compile(t, s)
	payer := authztest.Payer

	tests := []struct {
		name      string
		args      string
		wantDeny  string // policy expected to deny; "" means allowed
		wantError string
	}{
		{name: "decimal within bounds", args: `{"price": 10.25}`},
		{name: "decimal with four places", args: `{"price": 10.5000}`},
		{name: "decimal just above", args: `{"price": 10.5001}`, wantDeny: "quotes/expensive"},
		{name: "integer literal for a decimal", args: `{"price": 12}`, wantDeny: "quotes/expensive"},
		{name: "negative decimal", args: `{"price": -3.75}`},
		{name: "decimal in exponent form", args: `{"price": 1.05e1}`},
		{name: "five decimal places", args: `{"price": 10.12345}`, wantError: "arguments/price: number has more than 4 decimal places"},
		{name: "tiny decimal", args: `{"price": 1e-5}`, wantError: "more than 4 decimal places"},
		{name: "decimal beyond range", args: `{"price": 1e15}`, wantError: "arguments/price: number outside the range of a Cedar decimal"},
		{name: "decimal at the top of its range", args: `{"price": -922337203685477.5808}`},
		{name: "string for a decimal", args: `{"price": "12"}`, wantError: "arguments/price: want number, got string"},
		{name: "boolean", args: `{"price": 1, "urgent": true}`, wantDeny: "quotes/urgent"},
		{name: "boolean as string", args: `{"price": 1, "urgent": "true"}`, wantError: "arguments/urgent: want boolean, got string"},
		{name: "set", args: `{"price": 1, "tags": ["a", "blocked"]}`, wantDeny: "quotes/blocked"},
		{name: "set element of the wrong type", args: `{"price": 1, "tags": ["a", 7]}`, wantError: "arguments/tags/1: want string, got integer"},
		{name: "set as object", args: `{"price": 1, "tags": {"0": "blocked"}}`, wantError: "arguments/tags: want array, got object"},
		{name: "record", args: `{"price": 1, "recipient": {"iban": "XX00", "extra": 1}}`, wantDeny: "quotes/iban"},
		{name: "record missing required", args: `{"price": 1, "recipient": {}}`, wantError: "arguments/recipient/iban: required argument missing"},
		{name: "map argument dropped", args: `{"price": 1, "meta": {"k": "v"}}`},
		{name: "duplicate key nested", args: `{"price": 1, "recipient": {"iban": "DE", "iban": "XX"}}`, wantError: `duplicate key "iban"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(context.Background(), newRequest(payer, "pay__quote", tt.args))
			switch {
			case tt.wantError != "":
				if d.Allowed || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tt.wantError) {
					t.Errorf("decision = %+v, want a denial with an error containing %q", d, tt.wantError)
				}
			case tt.wantDeny != "":
				if d.Allowed || !slices.Equal(d.Policies, []string{tt.wantDeny}) || len(d.Errors) > 0 {
					t.Errorf("decision = %+v, want denied by %q", d, tt.wantDeny)
				}
			default:
				if !d.Allowed || len(d.Errors) > 0 {
					t.Errorf("decision = %+v, want allowed", d)
				}
			}
		})
	}
}

func TestDecideReportsEvaluationErrors(t *testing.T) {
	s := authztest.Snapshot()
	// Valid under strict validation, yet it errors at runtime: decimal
	// overflow is not a type error.
	s.PolicySets = []*configv1.PolicySet{{Meta: &configv1.ResourceMeta{Name: "p"}, Source: `permit(principal, action, resource);
@id("overflow")
forbid(principal, action == Action::"pay__pay", resource) when { context.arguments.amount * 9223372036854775807 > 0 };
`}}
	e := authztest.Compile(t, s)
	d := e.Decide(context.Background(), newRequest(authztest.Payer, authztest.PayAction, `{"amount": 2, "to": "bob"}`))
	if !d.Allowed || len(d.Errors) != 1 || !strings.HasPrefix(d.Errors[0], "policy p/overflow: ") {
		t.Errorf("decision = %+v, want allowed with p/overflow's evaluation error", d)
	}
}

func TestDecideConcurrent(t *testing.T) {
	e := authztest.Compile(t, authztest.Snapshot())
	type outcome struct {
		allowed bool
		invalid bool
	}
	done := make(chan outcome)
	for i := range 16 {
		go func() {
			args := `{"amount": 100, "to": "bob"}`
			if i%2 == 1 {
				args = `{"amount": 900, "to": 7}`
			}
			d := e.Decide(context.Background(), newRequest(authztest.Payer, authztest.PayAction, args))
			done <- outcome{allowed: d.Allowed, invalid: d.InvalidArguments}
		}()
	}
	allowed, invalid := 0, 0
	for range 16 {
		o := <-done
		if o.allowed {
			allowed++
		}
		if o.invalid {
			invalid++
		}
	}
	if allowed != 8 || invalid != 8 {
		t.Errorf("%d of 16 calls allowed and %d invalid, want 8 and 8", allowed, invalid)
	}
}
