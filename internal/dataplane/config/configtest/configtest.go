// Package configtest builds data-plane snapshots for tests: a small,
// complete gateway configuration that tests change field by field.
package configtest

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// API keys of the fixture's agents ("pck_<id>_<secret>").
const (
	// PayerKey belongs to agent "payer" of team "payments".
	PayerKey = "pck_0123456789abcdef_payer-secret"
	// MarketerKey belongs to agent "marketer" of team "marketing".
	MarketerKey = "pck_1111111111111111_marketer-secret"
	// ExpiredKey belongs to agent "payer" and expired at ExpiredAt.
	ExpiredKey = "pck_2222222222222222_expired-secret"
	// DisabledKey belongs to the disabled agent "retired" of team payments.
	DisabledKey = "pck_3333333333333333_retired-secret"
)

// Names in the fixture.
const (
	Upstream      = "pay"
	BearerSecret  = "pay-token"
	BalanceAction = "pay__balance" // read-only, no arguments
	PayAction     = "pay__pay"     // mutating: amount (integer), to (string)
	PolicySet     = "payments"
	PolicyFile    = "payments.cedar"
	Version       = 42
)

// Policies is the fixture's policy set: the payments team may call every
// tool, and nobody may pay 500 or more. The forbid is policy1.
const Policies = `permit(principal in Team::"payments", action in Action::"call_tool", resource);
forbid(principal, action == Action::"pay__pay", resource) when { context.arguments has amount && context.arguments.amount >= 500 };
`

// PaySchema is the input schema of pay/pay.
const PaySchema = `{
	"type": "object",
	"properties": {
		"amount": {"type": "integer", "minimum": 1},
		"to":     {"type": "string", "maxLength": 64},
		"memo":   {"oneOf": [{"type": "string"}, {"type": "null"}]}
	},
	"required": ["amount", "to"],
	"additionalProperties": false
}`

// VersionTime is the fixture's version time; ExpiredAt is when ExpiredKey
// stopped working.
var (
	VersionTime = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	ExpiredAt   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Hash is the SHA-256 of a key's text, as credential.New stores it.
func Hash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// Snapshot returns a fresh fixture snapshot: upstream "pay" with a bearer
// secret, two pinned tools, four agents and one policy set.
func Snapshot() *snapshotv1.Snapshot {
	return &snapshotv1.Snapshot{
		Version:     Version,
		ClusterId:   "test-cluster",
		VersionTime: timestamppb.New(VersionTime),
		Upstreams: []*configv1.Upstream{{
			Meta:       &configv1.ResourceMeta{Name: Upstream},
			Protocol:   configv1.Protocol_PROTOCOL_MCP,
			Url:        "https://pay.example/mcp",
			ToolPrefix: proto.String(Upstream),
			Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{
				Bearer: &configv1.BearerCredential{Secret: BearerSecret},
			}},
		}},
		Secrets: []*snapshotv1.SecretValue{{Name: BearerSecret, Version: 1, Value: []byte("upstream-token")}},
		ToolPins: []*configv1.ToolPin{
			{
				Meta:     &configv1.ResourceMeta{Name: "pay/balance"},
				Upstream: Upstream,
				Tool:     "balance",
				Versions: []*configv1.ToolVersion{{
					Version:     1,
					Definition:  []byte(`{"name":"balance","inputSchema":{"type":"object"}}`),
					InputSchema: []byte(`{"type": "object", "properties": {}}`),
					Class:       configv1.ToolClass_TOOL_CLASS_READ_ONLY,
				}},
			},
			{
				Meta:          &configv1.ResourceMeta{Name: "pay/pay"},
				Upstream:      Upstream,
				Tool:          "pay",
				ActiveVersion: 2,
				Versions: []*configv1.ToolVersion{
					{Version: 1, InputSchema: []byte(`{"type":"object"}`), Class: configv1.ToolClass_TOOL_CLASS_MUTATING},
					{Version: 2, Definition: []byte(`{"name":"pay"}`), InputSchema: []byte(PaySchema), Class: configv1.ToolClass_TOOL_CLASS_MUTATING},
				},
			},
		},
		Agents: []*configv1.Agent{
			{
				Meta: &configv1.ResourceMeta{Name: "payer", Owner: "alice", Labels: map[string]string{"env": "prod"}},
				Team: "payments",
				ApiKeys: []*configv1.ApiKey{
					{Id: "0123456789abcdef", Sha256: Hash(PayerKey)},
					{Id: "2222222222222222", Sha256: Hash(ExpiredKey), ExpireTime: timestamppb.New(ExpiredAt)},
				},
			},
			{
				Meta:    &configv1.ResourceMeta{Name: "marketer", Owner: "bob"},
				Team:    "marketing",
				ApiKeys: []*configv1.ApiKey{{Id: "1111111111111111", Sha256: Hash(MarketerKey)}},
			},
			{
				Meta:     &configv1.ResourceMeta{Name: "retired"},
				Team:     "payments",
				Disabled: true,
				ApiKeys:  []*configv1.ApiKey{{Id: "3333333333333333", Sha256: Hash(DisabledKey)}},
			},
		},
		PolicySets: []*configv1.PolicySet{{
			Meta:     &configv1.ResourceMeta{Name: PolicySet},
			Source:   Policies,
			Filename: PolicyFile,
			Version:  1,
		}},
	}
}

// Marshal serializes a snapshot as the control plane does.
func Marshal(t testing.TB, s *snapshotv1.Snapshot) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		t.Fatalf("marshal snapshot: %v", err)
	}
	return b
}

// Compile compiles s and fails the test if it is refused.
func Compile(t testing.TB, s *snapshotv1.Snapshot) *config.Compiled {
	t.Helper()
	c, err := config.Compile(Marshal(t, s))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

// JWT fixture values: the issuer and audience tokens for JWTSource carry.
const (
	JWTSource   = "corp-idp"
	JWTIssuer   = "https://idp.example"
	JWTAudience = "portcullis"
)

// JWTIssuerSource returns an identity source named name trusting issuer iss for
// use, with audience JWTAudience and either an inline JWKS or a JWKS URL.
func JWTIssuerSource(name, iss string, use configv1.JwtUse, jwks []byte, jwksURL string) *configv1.IdentitySource {
	return &configv1.IdentitySource{
		Meta: &configv1.ResourceMeta{Name: name},
		Kind: &configv1.IdentitySource_JwtIssuer{JwtIssuer: &configv1.JwtIssuer{
			Issuer: iss, Jwks: jwks, JwksUrl: jwksURL, Audiences: []string{JWTAudience}, Use: use,
		}},
	}
}

// BindJWT binds (source, subject) to the named agent of s.
func BindJWT(t testing.TB, s *snapshotv1.Snapshot, agent, source, subject string) {
	t.Helper()
	for _, a := range s.GetAgents() {
		if a.GetMeta().GetName() == agent {
			a.JwtSubjects = append(a.JwtSubjects, &configv1.JwtSubject{IdentitySource: source, Subject: subject})
			return
		}
	}
	t.Fatalf("no agent %q in the snapshot", agent)
}

// Scale fixture: ScaleTools tools "pay__t<k>" sharing ScaleSchema, and per
// policy one agent.
const (
	ScaleTools = 200
	// ScaleForbids is how many forbids with argument conditions Scale adds.
	ScaleForbids = 10
	// ScaleSchema types every scale tool's arguments.
	ScaleSchema = `{"type": "object", "properties": {"amount": {"type": "integer"}, "to": {"type": "string"}}, "required": ["amount", "to"]}`
)

// ScaleAgent is the agent that policy i of Scale permits.
func ScaleAgent(i int) string { return fmt.Sprintf("agent-%d", i) }

// ScaleAction is the tool policy i of Scale permits: tool i mod ScaleTools.
func ScaleAction(i int) string { return fmt.Sprintf("%s__t%d", Upstream, i%ScaleTools) }

// Scale returns the fixture with ScaleTools tools, n agents and n+10
// policies: policy i permits exactly ScaleAgent(i) on ScaleAction(i), and
// ScaleForbids forbids carry argument conditions, half of them over every
// tool and half on one tool each. A call by ScaleAgent(i) on ScaleAction(i)
// with amount ≤ 10,000 and to other than "mallory" is allowed by policy i
// alone.
func Scale(n int) *snapshotv1.Snapshot {
	s := Snapshot()
	s.ToolPins = make([]*configv1.ToolPin, 0, ScaleTools)
	for k := range ScaleTools {
		s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
			Meta:     &configv1.ResourceMeta{Name: fmt.Sprintf("%s/t%d", Upstream, k)},
			Upstream: Upstream,
			Tool:     fmt.Sprintf("t%d", k),
			Versions: []*configv1.ToolVersion{{Version: 1, InputSchema: []byte(ScaleSchema), Class: configv1.ToolClass_TOOL_CLASS_MUTATING}},
		})
	}
	s.Agents = make([]*configv1.Agent, 0, n)
	var src strings.Builder
	for i := range n {
		s.Agents = append(s.Agents, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: ScaleAgent(i)}, Team: fmt.Sprintf("team-%d", i%50)})
		fmt.Fprintf(&src, "permit(principal == Agent::%q, action == Action::%q, resource);\n", ScaleAgent(i), ScaleAction(i))
	}
	for k := range ScaleForbids {
		if k%2 == 0 {
			fmt.Fprintf(&src, "forbid(principal, action in Action::\"call_tool\", resource) when { context.arguments has amount && context.arguments.amount > %d };\n", 10_000+k)
		} else {
			fmt.Fprintf(&src, "forbid(principal, action == Action::%q, resource) when { context.arguments.to == \"mallory\" };\n", ScaleAction(k*37))
		}
	}
	s.PolicySets = []*configv1.PolicySet{{Meta: &configv1.ResourceMeta{Name: "scale"}, Source: src.String(), Version: 1}}
	return s
}
