package cedarschema_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

const paymentsPolicies = `@id("allow-payments")
permit(principal in Team::"payments", action in Action::"call_tool", resource);

@id("cap")
forbid(principal, action == Action::"pay__send", resource)
  when { context.arguments.amount > 500 };

@id("night")
forbid(principal, action in Action::"call_tool", resource)
  when { context.time.toTime() >= duration("22h") };
`

// world is the entity store a real gateway request would see.
func world(s *cedarschema.Schema) types.EntityMap {
	uid := types.NewEntityUID
	entities := types.EntityMap{}
	add := func(e types.Entity) { entities[e.UID] = e }
	add(types.Entity{UID: uid(cedarschema.TypeTeam, "payments")})
	add(types.Entity{UID: uid(cedarschema.TypeTeam, "marketing")})
	for _, a := range []struct{ id, team string }{{"payer", "payments"}, {"marketer", "marketing"}} {
		add(types.Entity{
			UID:     uid(cedarschema.TypeAgent, types.String(a.id)),
			Parents: types.NewEntityUIDSet(uid(cedarschema.TypeTeam, types.String(a.team))),
			Attributes: types.NewRecord(types.RecordMap{
				"name":  types.String(a.id),
				"owner": types.String("alice"),
			}),
			Tags: types.NewRecord(types.RecordMap{"env": types.String("prod")}),
		})
	}
	add(types.Entity{
		UID:        uid(cedarschema.TypeUpstream, "pay"),
		Attributes: types.NewRecord(types.RecordMap{"name": types.String("pay"), "protocol": types.String("mcp")}),
	})
	add(types.Entity{
		UID:     uid(cedarschema.TypeTool, "pay__send"),
		Parents: types.NewEntityUIDSet(uid(cedarschema.TypeUpstream, "pay")),
		Attributes: types.NewRecord(types.RecordMap{
			"name":     types.String("send"),
			"readOnly": types.False,
			"version":  types.Long(3),
		}),
	})
	maps.Copy(entities, s.ActionEntities())
	return entities
}

// payRequest is the request the gateway builds for an agent calling
// pay__send with the given amount at the given time.
func payRequest(t testing.TB, agent string, amount int64, at time.Time) types.Request {
	t.Helper()
	price, err := types.ParseDecimal("9.99")
	if err != nil {
		t.Fatal(err)
	}
	ip, err := types.ParseIPAddr("10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	return types.Request{
		Principal: types.NewEntityUID(cedarschema.TypeAgent, types.String(agent)),
		Action:    cedarschema.ActionUID(cedarschema.ActionName("pay", "send")),
		Resource:  types.NewEntityUID(cedarschema.TypeTool, "pay__send"),
		Context: types.NewRecord(types.RecordMap{
			cedarschema.ContextArguments: types.NewRecord(types.RecordMap{
				"amount":    types.Long(amount),
				"price":     price,
				"currency":  types.String("EUR"),
				"recipient": types.NewRecord(types.RecordMap{"iban": types.String("DE00")}),
			}),
			cedarschema.ContextProtocol: types.String("mcp"),
			cedarschema.ContextTime:     types.NewDatetime(at),
			cedarschema.ContextSourceIP: ip,
			cedarschema.ContextDegraded: types.False,
			cedarschema.ContextFindings: types.NewSet(),
		}),
	}
}

func TestAuthorizeEndToEnd(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	set, err := s.ParsePolicies("payments", "payments.cedar", []byte(paymentsPolicies))
	if err != nil {
		t.Fatalf("ParsePolicies: %v", err)
	}
	ps := cedar.NewPolicySet()
	for _, p := range set.Policies {
		ps.Add(cedar.PolicyID(p.ID), p.Policy)
	}
	entities := world(s)
	noon := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	night := time.Date(2025, 3, 14, 23, 0, 0, 0, time.UTC)

	tests := []struct {
		name        string
		agent       string
		amount      int64
		at          time.Time
		want        cedar.Decision
		wantReasons []string
	}{
		{name: "small payment by payments team", agent: "payer", amount: 100, at: noon, want: cedar.Allow, wantReasons: []string{"payments/allow-payments"}},
		{name: "large payment forbidden", agent: "payer", amount: 900, at: noon, want: cedar.Deny, wantReasons: []string{"payments/cap"}},
		{name: "at the cap", agent: "payer", amount: 500, at: noon, want: cedar.Allow, wantReasons: []string{"payments/allow-payments"}},
		{name: "other team denied by default", agent: "marketer", amount: 100, at: noon, want: cedar.Deny},
		{name: "night forbidden", agent: "payer", amount: 100, at: night, want: cedar.Deny, wantReasons: []string{"payments/night"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := payRequest(t, tt.agent, tt.amount, tt.at)
			if err := s.ValidateRequest(req); err != nil {
				t.Fatalf("request does not conform to the schema: %v", err)
			}
			got, diag := cedar.Authorize(ps, entities, req)
			if len(diag.Errors) > 0 {
				t.Fatalf("evaluation errors (schema and request disagree): %v", diag.Errors)
			}
			if got != tt.want {
				t.Errorf("decision = %v, want %v", got, tt.want)
			}
			var reasons []string
			for _, r := range diag.Reasons {
				reasons = append(reasons, string(r.PolicyID))
			}
			slices.Sort(reasons)
			if !slices.Equal(reasons, tt.wantReasons) {
				t.Errorf("reasons = %q, want %q", reasons, tt.wantReasons)
			}
		})
	}
}

func TestValidateRequest(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	noon := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	withContext := func(edit func(types.RecordMap)) types.Request {
		req := payRequest(t, "payer", 100, noon)
		m := maps.Collect(req.Context.All())
		edit(m)
		req.Context = types.NewRecord(m)
		return req
	}
	tests := []struct {
		name    string
		req     types.Request
		wantErr bool
	}{
		{name: "as built", req: payRequest(t, "payer", 100, noon)},
		{name: "with verified user", req: withContext(func(m types.RecordMap) {
			m[cedarschema.ContextUser] = types.NewEntityUID(cedarschema.TypeUser, "bob")
		})},
		{name: "amount as string", wantErr: true, req: withContext(func(m types.RecordMap) {
			m[cedarschema.ContextArguments] = types.NewRecord(types.RecordMap{
				"amount": types.String("100"), "price": types.Long(1), "currency": types.String("EUR"),
				"recipient": types.NewRecord(types.RecordMap{"iban": types.String("DE00")}),
			})
		})},
		{name: "untyped argument passed through", wantErr: true, req: withContext(func(m types.RecordMap) {
			args := maps.Collect(m[cedarschema.ContextArguments].(types.Record).All())
			args["choice"] = types.String("a")
			m[cedarschema.ContextArguments] = types.NewRecord(args)
		})},
		{name: "missing time", wantErr: true, req: withContext(func(m types.RecordMap) { delete(m, cedarschema.ContextTime) })},
		{name: "with findings", req: withContext(func(m types.RecordMap) {
			m[cedarschema.ContextFindings] = types.NewSet(types.String("pii"), types.String("pii.email"))
		})},
		{name: "missing findings", wantErr: true, req: withContext(func(m types.RecordMap) { delete(m, cedarschema.ContextFindings) })},
		{name: "findings not strings", wantErr: true, req: withContext(func(m types.RecordMap) {
			m[cedarschema.ContextFindings] = types.NewSet(types.Long(1))
		})},
		{name: "unknown action", wantErr: true, req: func() types.Request {
			r := payRequest(t, "payer", 100, noon)
			r.Action = cedarschema.ActionUID("pay__steal")
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.ValidateRequest(tt.req)
			if (err != nil) != tt.wantErr {
				t.Errorf("ValidateRequest() error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
