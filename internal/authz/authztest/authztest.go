// Package authztest builds authorization snapshots for tests: a small
// configuration (one upstream, two pinned tools, three agents, one policy
// set) that tests change field by field, and a scale fixture with many
// agents and policies. The snapshots carry nothing secret — no API keys,
// credentials or identity sources — like the control plane's authorization
// snapshot; data-plane tests add those (see dataplane/config/configtest).
package authztest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/authz"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// Names in the fixture.
const (
	Upstream      = "pay"
	BalanceAction = "pay__balance" // read-only, no arguments
	PayAction     = "pay__pay"     // mutating: amount (integer), to (string)
	PolicySet     = "payments"
	PolicyFile    = "payments.cedar"
	Version       = 42
)

// Agents of the fixture: Payer (owner alice, label env=prod) and the
// disabled Retired are in team "payments", Marketer (owner bob) in team
// "marketing".
const (
	Payer    = "payer"
	Marketer = "marketer"
	Retired  = "retired"
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

// VersionTime is the fixture's version time.
var VersionTime = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

// Snapshot returns a fresh fixture snapshot: upstream "pay" (without a
// credential), two pinned tools, three agents (without keys) and one
// policy set.
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
		}},
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
			{Meta: &configv1.ResourceMeta{Name: Payer, Owner: "alice", Labels: map[string]string{"env": "prod"}}, Team: "payments"},
			{Meta: &configv1.ResourceMeta{Name: Marketer, Owner: "bob"}, Team: "marketing"},
			{Meta: &configv1.ResourceMeta{Name: Retired}, Team: "payments", Disabled: true},
		},
		PolicySets: []*configv1.PolicySet{{
			Meta:     &configv1.ResourceMeta{Name: PolicySet},
			Source:   Policies,
			Filename: PolicyFile,
			Version:  1,
		}},
	}
}

// WithPolicies is the fixture with its policy set's source replaced.
func WithPolicies(src string) *snapshotv1.Snapshot {
	s := Snapshot()
	s.PolicySets[0].Source = src
	return s
}

// Compile compiles s and fails the test if it is refused.
func Compile(t testing.TB, s *snapshotv1.Snapshot, opts ...authz.Option) *authz.Engine {
	t.Helper()
	e, err := authz.Compile(s, opts...)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
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

// Remote agents AddRemoteAgents registers: A2A upstreams with pinned
// cards. Travel is mutating with skills "search" and "book"; Weather is
// read-only with skill "forecast".
const (
	Travel  = "travel"
	Weather = "weather"
)

// Card is an agent card with the given skill ids.
func Card(name string, skills ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"name":%q,"description":"d","version":"1","supportedInterfaces":[{"url":"https://%s.example/a2a","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],"capabilities":{"streaming":true},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[`, name, name)
	for i, s := range skills {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%q,"name":%q,"description":"d","tags":[]}`, s, s)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// CardPin is the agent-card pin of upstream with one version.
func CardPin(upstream string, class configv1.ToolClass, card []byte) *configv1.ToolPin {
	return &configv1.ToolPin{
		Meta:     &configv1.ResourceMeta{Name: upstream + "/agent-card"},
		Upstream: upstream,
		Tool:     "agent-card",
		Kind:     configv1.PinKind_PIN_KIND_AGENT_CARD,
		Versions: []*configv1.ToolVersion{{Version: 1, Definition: card, Class: class}},
	}
}

// AddRemoteAgents adds the A2A upstreams Travel and Weather with their
// card pins to s and returns s.
func AddRemoteAgents(s *snapshotv1.Snapshot) *snapshotv1.Snapshot {
	for _, u := range []string{Travel, Weather} {
		s.Upstreams = append(s.Upstreams, &configv1.Upstream{
			Meta: &configv1.ResourceMeta{Name: u}, Protocol: configv1.Protocol_PROTOCOL_A2A,
			Url: "https://" + u + ".example/a2a", ToolPrefix: proto.String(u),
		})
	}
	s.ToolPins = append(s.ToolPins,
		CardPin(Travel, configv1.ToolClass_TOOL_CLASS_MUTATING, Card("Travel", "search", "book")),
		CardPin(Weather, configv1.ToolClass_TOOL_CLASS_READ_ONLY, Card("Weather", "forecast")))
	return s
}
