package config_test

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

func TestCompile(t *testing.T) {
	c := configtest.Compile(t, configtest.Snapshot())

	if got := c.Version(); got != configtest.Version {
		t.Errorf("Version() = %d, want %d", got, configtest.Version)
	}
	if got := c.VersionTime(); !got.Equal(configtest.VersionTime) {
		t.Errorf("VersionTime() = %v, want %v", got, configtest.VersionTime)
	}
	if got := c.Snapshot().GetClusterId(); got != "test-cluster" {
		t.Errorf("Snapshot().ClusterId = %q", got)
	}
	if u, ok := c.Upstream(configtest.Upstream); !ok || u.GetUrl() != "https://pay.example/mcp" {
		t.Errorf("Upstream(%q) = %v, %v", configtest.Upstream, u, ok)
	}
	if _, ok := c.Upstream("nope"); ok {
		t.Error("Upstream(nope) found")
	}
	// The snapshot's secret names no hosts (a control plane that predates
	// bindings): it goes where the upstream that uses it is.
	if v, hosts, ok := c.Secret(configtest.BearerSecret); !ok || string(v) != "upstream-token" || !slices.Equal(hosts, []string{"pay.example:443"}) {
		t.Errorf("Secret(%q) = %q, %v, %v; want the value bound to [pay.example:443]", configtest.BearerSecret, v, hosts, ok)
	}
	if _, _, ok := c.Secret("nope"); ok {
		t.Error("Secret(nope) found")
	}
	if frozen, _ := c.Frozen(); frozen {
		t.Error("Frozen() = true for a snapshot without a freeze")
	}
	if p := c.Egress(); p.AllowLinkLocal || len(p.Allow)+len(p.Deny) != 0 {
		t.Errorf("Egress() = %+v for a snapshot without a policy, want the default", p)
	}
	withPolicy := configtest.Snapshot()
	withPolicy.Egress = &snapshotv1.EgressPolicy{AllowLinkLocal: true, Deny: []string{"169.254.169.254/32"}}
	if p := configtest.Compile(t, withPolicy).Egress(); !p.AllowLinkLocal || fmt.Sprint(p.Deny) != "[169.254.169.254/32]" {
		t.Errorf("Egress() = %+v, want the snapshot's policy", p)
	}

	var actions []string
	for _, tool := range c.Tools() {
		actions = append(actions, tool.Action)
	}
	if want := []string{configtest.BalanceAction, configtest.PayAction}; fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Errorf("Tools() actions = %v, want %v", actions, want)
	}
	pay, ok := c.Tool(configtest.PayAction, nil)
	switch {
	case !ok:
		t.Fatalf("Tool(%q) not found", configtest.PayAction)
	case pay.Upstream != "pay" || pay.Name != "pay" || pay.Version != 2 || pay.ReadOnly():
		t.Errorf("Tool(%q) = %+v, want upstream pay, tool pay, version 2 (the active one), mutating", configtest.PayAction, pay)
	case pay.ValidateArguments == nil:
		t.Errorf("Tool(%q) has no validator", configtest.PayAction)
	}
	if balance, _ := c.Tool(configtest.BalanceAction, nil); !balance.ReadOnly() {
		t.Errorf("Tool(%q) is not read-only", configtest.BalanceAction)
	}
	if _, ok := c.Tool("pay__steal", nil); ok {
		t.Error("Tool(pay__steal) found")
	}
}

func TestCompileNewestVersionWhenActiveIsZero(t *testing.T) {
	s := configtest.Snapshot()
	s.ToolPins[1].ActiveVersion = 0
	s.ToolPins[1].Versions[0].Version = 3 // now the newest, with a schema that types nothing
	c := configtest.Compile(t, s)
	if pay, _ := c.Tool(configtest.PayAction, nil); pay.Version != 3 {
		t.Errorf("Tool(%q).Version = %d, want the newest, 3", configtest.PayAction, pay.Version)
	}
}

func TestCompileSecretHosts(t *testing.T) {
	s := configtest.Snapshot()
	s.Secrets[0].Hosts = []string{"127.0.0.1:7450", "pay.example"}
	_, hosts, ok := configtest.Compile(t, s).Secret(configtest.BearerSecret)
	if !ok || !slices.Equal(hosts, s.Secrets[0].Hosts) {
		t.Errorf("hosts = %v, want the snapshot's %v", hosts, s.Secrets[0].Hosts)
	}
}

func TestCompileFrozen(t *testing.T) {
	s := configtest.Snapshot()
	s.Freeze = &snapshotv1.Freeze{Frozen: true, Reason: "incident 42"}
	frozen, reason := configtest.Compile(t, s).Frozen()
	if !frozen || reason != "incident 42" {
		t.Errorf("Frozen() = %v, %q, want true, %q", frozen, reason, "incident 42")
	}
}

// TestCompileSettings: a stored setting's values are in force, an absent
// one has its default, and a key this data plane does not know (a newer
// control plane's) is ignored.
func TestCompileSettings(t *testing.T) {
	c := configtest.Compile(t, configtest.Snapshot())
	if got := c.Setting(setting.MCPAllowedOrigins); got == nil || len(got) != 0 {
		t.Errorf("no setting stored: %q, want the empty default", got)
	}
	s := configtest.Snapshot()
	s.Settings = []*configv1.Setting{
		{Meta: &configv1.ResourceMeta{Name: setting.MCPAllowedOrigins}, Values: []string{"https://app.example"}},
		{Meta: &configv1.ResourceMeta{Name: "from.a.newer.release"}, Values: []string{"anything"}},
	}
	c = configtest.Compile(t, s)
	if got := c.Setting(setting.MCPAllowedOrigins); !slices.Equal(got, []string{"https://app.example"}) {
		t.Errorf("stored setting: %q", got)
	}
	if got := c.Setting("from.a.newer.release"); got != nil {
		t.Errorf("unknown key: %q, want nil", got)
	}
}

func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(s *snapshotv1.Snapshot)
		want   []string // substrings of the error, each required
		wantRE string   // optional pattern the error must match
	}{
		{
			name: "setting not in canonical form",
			edit: func(s *snapshotv1.Snapshot) {
				s.Settings = []*configv1.Setting{{Meta: &configv1.ResourceMeta{Name: setting.MCPAllowedOrigins}, Values: []string{"HTTPS://App.example"}}}
			},
			want: []string{`setting "mcp.allowed-origins": values must be in canonical form: https://app.example`},
		},
		{
			name: "setting twice",
			edit: func(s *snapshotv1.Snapshot) {
				one := &configv1.Setting{Meta: &configv1.ResourceMeta{Name: setting.MCPAllowedOrigins}, Values: []string{}}
				s.Settings = []*configv1.Setting{one, one}
			},
			want: []string{`setting "mcp.allowed-origins" appears twice`},
		},
		{
			name: "egress policy with a bad range",
			edit: func(s *snapshotv1.Snapshot) {
				s.Egress = &snapshotv1.EgressPolicy{Deny: []string{"10.0.0.0/8", "not-a-range"}}
			},
			want: []string{`egress policy: deny prefix "not-a-range"`},
		},
		{
			name: "inspection rules this data plane cannot run",
			edit: func(s *snapshotv1.Snapshot) {
				s.InspectionRules = []*configv1.InspectionRule{
					{Meta: &configv1.ResourceMeta{Name: "future"}, Side: configv1.InspectionSide_INSPECTION_SIDE_REQUEST,
						Mode: configv1.InspectionMode_INSPECTION_MODE_ENFORCE, Detectors: []string{"pii.passport"}},
					{Meta: &configv1.ResourceMeta{Name: "broken"}, Side: configv1.InspectionSide_INSPECTION_SIDE_RESPONSE,
						Mode: configv1.InspectionMode_INSPECTION_MODE_SHADOW, Patterns: []string{"(unclosed"}},
					// Off rules are not compiled, so they cannot break a snapshot.
					{Meta: &configv1.ResourceMeta{Name: "parked"}, Side: configv1.InspectionSide_INSPECTION_SIDE_REQUEST,
						Mode: configv1.InspectionMode_INSPECTION_MODE_OFF, Detectors: []string{"nonsense"}},
				}
			},
			want: []string{`inspection rule "future": detector pii has no kind "passport"`, `inspection rule "broken": patterns[0]`},
		},
		{
			name: "pin of a missing upstream",
			edit: func(s *snapshotv1.Snapshot) { s.ToolPins[1].Upstream = "nope" },
			want: []string{`tool pin "pay/pay": upstream "nope" does not exist`},
		},
		{
			name: "missing secret",
			edit: func(s *snapshotv1.Snapshot) { s.Secrets = nil },
			want: []string{`upstream "pay": credential secret "pay-token" is missing from the snapshot`},
		},
		{
			name: "missing header secret",
			edit: func(s *snapshotv1.Snapshot) {
				s.Upstreams[0].Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Header{
					Header: &configv1.HeaderCredential{Header: "X-Api-Key", Secret: "hdr"},
				}}
			},
			want: []string{`upstream "pay": credential secret "hdr" is missing`},
		},
		{
			name: "input schema with a wrong keyword type",
			edit: func(s *snapshotv1.Snapshot) { s.ToolPins[1].Versions[1].InputSchema = []byte(`{"type": 12}`) },
			want: []string{`tool pin "pay/pay": version 2: input schema does not compile`},
		},
		{
			name: "input schema not JSON",
			edit: func(s *snapshotv1.Snapshot) { s.ToolPins[1].Versions[1].InputSchema = []byte(`{"type":`) },
			want: []string{`tool pin "pay/pay": version 2: input schema does not compile: not JSON`},
		},
		{
			name: "remote reference",
			edit: func(s *snapshotv1.Snapshot) {
				s.ToolPins[0].Versions[0].InputSchema = []byte(`{"$ref": "https://schemas.example/x.json"}`)
			},
			want: []string{`tool pin "pay/balance"`, "remote references are not allowed", "https://schemas.example/x.json"},
		},
		{
			name: "relative reference",
			edit: func(s *snapshotv1.Snapshot) {
				s.ToolPins[0].Versions[0].InputSchema = []byte(`{"$ref": "other.json#/x"}`)
			},
			want: []string{`tool pin "pay/balance"`, "remote references are not allowed"},
		},
		{
			name: "file reference",
			edit: func(s *snapshotv1.Snapshot) {
				s.ToolPins[0].Versions[0].InputSchema = []byte(`{"$ref": "file:///etc/passwd"}`)
			},
			want: []string{`tool pin "pay/balance"`, "remote references are not allowed"},
		},
		{
			name: "active version missing",
			edit: func(s *snapshotv1.Snapshot) { s.ToolPins[1].ActiveVersion = 7 },
			want: []string{`tool pin "pay/pay": active version 7 does not exist`},
		},
		{
			name: "pin without versions",
			edit: func(s *snapshotv1.Snapshot) { s.ToolPins[0].Versions = nil },
			want: []string{`tool pin "pay/balance": no approved version`},
		},
		{
			name: "Cedar syntax error",
			edit: func(s *snapshotv1.Snapshot) {
				s.PolicySets[0].Source = "permit(principal, action, resource);\nforbid(principal, action, resource) when { context.arguments.amount > };\n"
			},
			want:   []string{`policy set "payments"`, "syntax error"},
			wantRE: `payments\.cedar:2:\d+: `,
		},
		{
			name: "policy using an untyped argument",
			edit: func(s *snapshotv1.Snapshot) {
				s.PolicySets[0].Source = configtest.Policies +
					`forbid(principal, action == Action::"pay__pay", resource) when { context.arguments.memo == "x" };` + "\n"
			},
			want:   []string{`policy set "payments"`, "policy payments/policy2"},
			wantRE: `payments\.cedar:3:1: `,
		},
		{
			name: "duplicate action",
			edit: func(s *snapshotv1.Snapshot) {
				s.Upstreams = append(s.Upstreams, &configv1.Upstream{
					Meta: &configv1.ResourceMeta{Name: "pay2"}, Protocol: configv1.Protocol_PROTOCOL_MCP, ToolPrefix: proto.String("pay"),
				})
				s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
					Meta: &configv1.ResourceMeta{Name: "pay2/pay"}, Upstream: "pay2", Tool: "pay",
					Versions: []*configv1.ToolVersion{{Version: 1, InputSchema: []byte(`{"type":"object"}`)}},
				})
			},
			want: []string{`tool pin "pay2/pay": action "pay__pay" is already the action of tool pin "pay/pay"`},
		},
		{
			name: "duplicate API key id",
			edit: func(s *snapshotv1.Snapshot) {
				s.Agents[1].ApiKeys = append(s.Agents[1].ApiKeys, &configv1.ApiKey{Id: "0123456789abcdef", Sha256: configtest.Hash("x")})
			},
			want: []string{`agent "marketer": API key id "0123456789abcdef" is also used by agent "payer"`},
		},
		{
			name: "malformed API key hash",
			edit: func(s *snapshotv1.Snapshot) { s.Agents[1].ApiKeys[0].Sha256 = []byte("short") },
			want: []string{`agent "marketer": API key "1111111111111111": hash is 5 bytes, want 32`},
		},
		{
			name: "duplicate policy set",
			edit: func(s *snapshotv1.Snapshot) { s.PolicySets = append(s.PolicySets, s.PolicySets[0]) },
			want: []string{`policy set "payments" appears twice`},
		},
		{
			name: "every problem at once",
			edit: func(s *snapshotv1.Snapshot) {
				s.Secrets = nil
				s.ToolPins[0].Versions[0].InputSchema = []byte(`{"minimum": "one"}`)
				s.PolicySets[0].Source = "permit(principal, action, resource"
			},
			want: []string{"3 problems", `credential secret "pay-token"`, `tool pin "pay/balance"`, `policy set "payments"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := configtest.Snapshot()
			tt.edit(s)
			c, err := config.Compile(configtest.Marshal(t, s))
			if err == nil {
				t.Fatalf("Compile() = %v, want an error", c)
			}
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T is not a *config.Error: %v", err, err)
			}
			if cerr.Version != configtest.Version {
				t.Errorf("Error.Version = %d, want %d", cerr.Version, configtest.Version)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q:\n%s", w, msg)
				}
			}
			if tt.wantRE != "" && !regexp.MustCompile(tt.wantRE).MatchString(msg) {
				t.Errorf("error does not match %q:\n%s", tt.wantRE, msg)
			}
		})
	}
}

func TestCompileRefusesGarbage(t *testing.T) {
	_, err := config.Compile([]byte{0xff, 0xff, 0xff})
	var cerr *config.Error
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "does not decode") {
		t.Errorf("Compile(garbage) error = %v, want a *config.Error saying it does not decode", err)
	}
}

func TestErrorIsBounded(t *testing.T) {
	s := configtest.Snapshot()
	for i := range 500 {
		s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
			Meta:     &configv1.ResourceMeta{Name: fmt.Sprintf("ghost/tool%d", i)},
			Upstream: strings.Repeat("g", 2000), Tool: fmt.Sprintf("tool%d", i),
		})
	}
	_, err := config.Compile(configtest.Marshal(t, s))
	if err == nil {
		t.Fatal("Compile() accepted pins of a missing upstream")
	}
	msg := err.Error()
	if len(msg) > config.MaxErrorBytes {
		t.Errorf("error is %d bytes, more than %d", len(msg), config.MaxErrorBytes)
	}
	if !strings.Contains(msg, "500 problems") || !strings.Contains(msg, "more") {
		t.Errorf("error does not count what it left out:\n%s", msg)
	}
}

// TestCompileRefusesOverLimits hands Compile snapshots over the limits —
// as a control plane of another version, or a tampered file, could — and
// wants each refused before any parser runs, with a reason that names the
// resource and the limit.
func TestCompileRefusesOverLimits(t *testing.T) {
	deep := func(n int) string {
		return "permit(principal, action, resource) when { " + strings.Repeat("(", n) + "true" + strings.Repeat(")", n) + " };"
	}
	tests := []struct {
		name string
		edit func(*snapshotv1.Snapshot)
		want string
	}{
		{name: "500,000 nested parentheses", edit: func(s *snapshotv1.Snapshot) { s.PolicySets[0].Source = deep(500_000) },
			want: `policy set "payments" is over a limit: payments.cedar:1:107: brackets nest more than 64 levels deep`},
		{name: "100,000 nested parentheses, no file name", edit: func(s *snapshotv1.Snapshot) {
			s.PolicySets[0].Source, s.PolicySets[0].Filename = deep(100_000), ""
		}, want: `payments.cedar:1:107: brackets nest`},
		{name: "a long ! chain", edit: func(s *snapshotv1.Snapshot) {
			s.PolicySets[0].Source = "permit(principal, action, resource) when { " + strings.Repeat("!", 200_000) + "true };"
		}, want: "deeper than 1024 levels"},
		{name: "too many policies", edit: func(s *snapshotv1.Snapshot) {
			s.PolicySets[0].Source = strings.Repeat("permit(principal,action,resource);", limits.PoliciesPerSet+1)
		}, want: "more than 20000 policies in one set"},
		{name: "a deeply nested input schema", edit: func(s *snapshotv1.Snapshot) {
			s.ToolPins[1].Versions[1].InputSchema = []byte(strings.Repeat(`{"type":"array","items":`, 5000) + `{}` + strings.Repeat("}", 5000))
		}, want: `tool pin "pay/pay" is over a limit: versions[1].input_schema: objects and arrays nest more than 64 levels deep`},
		{name: "a deeply nested JWKS", edit: func(s *snapshotv1.Snapshot) {
			s.IdentitySources = []*configv1.IdentitySource{{Meta: &configv1.ResourceMeta{Name: "idp"}, Kind: &configv1.IdentitySource_JwtIssuer{
				JwtIssuer: &configv1.JwtIssuer{Issuer: "https://idp", Jwks: []byte(strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000))},
			}}}
		}, want: `identity source "idp" is over a limit: jwt_issuer.jwks: at most 65536 bytes`},
		{name: "a large secret", edit: func(s *snapshotv1.Snapshot) { s.Secrets[0].Value = make([]byte, limits.SecretValue+1) },
			want: `secret "pay-token" is over a limit`},
		{name: "too many list values", edit: func(s *snapshotv1.Snapshot) {
			l := &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}}
			for i := range limits.ListValues + 1 {
				l.Values = append(l.Values, fmt.Sprint(i))
			}
			s.ValueLists = append(s.ValueLists, l)
		}, want: `value list "payees" is over a limit: values: at most 10000 values`},
		{name: "a long freeze reason", edit: func(s *snapshotv1.Snapshot) {
			s.Freeze = &snapshotv1.Freeze{Frozen: true, Reason: strings.Repeat("x", limits.FreezeReason+1)}
		}, want: "the freeze reason is longer than 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := configtest.Snapshot()
			tt.edit(s)
			_, err := config.Compile(configtest.Marshal(t, s))
			var cerr *config.Error
			if !errors.As(err, &cerr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile error = %v, want a *config.Error mentioning %q", err, tt.want)
			}
		})
	}
}

// TestErrorKeepsFirstProblems: a snapshot with a problem in each of
// thousands of resources is refused with the first hundred and a count.
func TestErrorKeepsFirstProblems(t *testing.T) {
	s := configtest.Snapshot()
	for i := range 5000 {
		s.Agents = append(s.Agents, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: fmt.Sprint("a", i), Owner: strings.Repeat("o", limits.Owner+1)}})
	}
	_, err := config.Compile(configtest.Marshal(t, s))
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Compile error = %v, want a *config.Error", err)
	}
	if len(cerr.Problems) != 100 || cerr.Omitted != 4900 {
		t.Errorf("%d problems kept and %d omitted, want 100 and 4900", len(cerr.Problems), cerr.Omitted)
	}
	if msg := err.Error(); !strings.Contains(msg, "(5000 problems)") || !strings.Contains(msg, "more") || len(msg) > config.MaxErrorBytes {
		t.Errorf("error of %d bytes does not count all 5000 problems:\n%s", len(msg), msg)
	}
}

func TestCompileInspectionRules(t *testing.T) {
	s := configtest.Snapshot()
	s.InspectionRules = []*configv1.InspectionRule{
		{Meta: &configv1.ResourceMeta{Name: "no-exfil"}, Side: configv1.InspectionSide_INSPECTION_SIDE_REQUEST,
			Mode: configv1.InspectionMode_INSPECTION_MODE_ENFORCE, Detectors: []string{"exfiltration"},
			Scope: &configv1.InspectionScope{Upstream: "pay"}},
		{Meta: &configv1.ResourceMeta{Name: "parked"}, Side: configv1.InspectionSide_INSPECTION_SIDE_REQUEST,
			Mode: configv1.InspectionMode_INSPECTION_MODE_OFF, Detectors: []string{"pii"}},
	}
	c := configtest.Compile(t, s)
	rules := c.Inspection().For(inspect.Request, inspect.Target{Upstream: "pay"})
	if len(rules) != 1 || rules[0].Name != "no-exfil" {
		t.Errorf("request rules for pay = %v, want no-exfil only (parked is off)", rules)
	}
	if got := c.Inspection().For(inspect.Request, inspect.Target{Upstream: "other"}); len(got) != 0 {
		t.Errorf("rules for another upstream = %v", got)
	}
}
