// Package limitstest generates gateway configuration from fuzz bytes,
// shaped to probe the limits: Cedar sources and JSON documents nested or
// repeated from a handful of levels to far beyond the limits, fields at and
// over their sizes and counts, and raw fuzz bytes where parsers read text.
// Both planes' fuzz targets use it: the control plane's to build commands
// for its state machine, the data plane's to build snapshots.
package limitstest

import (
	"fmt"
	"strings"
	"time"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Gen reads choices from fuzz bytes; once they run out every choice is 0,
// and choice 0 is always the ordinary one (a short valid value), so short
// inputs generate valid configuration. The same bytes always generate the
// same values.
type Gen struct {
	data []byte
	pos  int
}

// New returns a generator reading data.
func New(data []byte) *Gen { return &Gen{data: data} }

// Done reports whether every byte was read.
func (g *Gen) Done() bool { return g.pos >= len(g.data) }

// Byte returns the next byte, 0 at the end.
func (g *Gen) Byte() byte {
	if g.Done() {
		return 0
	}
	g.pos++
	return g.data[g.pos-1]
}

// Intn returns a number in [0, n).
func (g *Gen) Intn(n int) int {
	if n <= 1 {
		return 0
	}
	v := int(g.Byte())<<8 | int(g.Byte())
	return v % n
}

// Bool returns a choice.
func (g *Gen) Bool() bool { return g.Byte()&1 == 1 }

// Raw returns up to n of the remaining bytes, as they are.
func (g *Gen) Raw(n int) []byte {
	n = min(g.Intn(n+1), len(g.data)-g.pos)
	out := g.data[g.pos : g.pos+n]
	g.pos += n
	return out
}

// Count returns a repetition count from 1 to max: half the time a few,
// else spread over orders of magnitude so that a few bytes reach a
// million.
func (g *Gen) Count(max int) int {
	b := g.Byte()
	if b < 128 {
		return min(1+int(b%8), max)
	}
	n := 1 << (b % 21)
	n += int(b>>5) * n / 8
	return min(n, max)
}

// Size returns a length: mostly well under limit, now and then at it or
// just over.
func (g *Gen) Size(limit int) int {
	switch g.Intn(32) {
	case 30:
		return limit
	case 31:
		return limit + 1
	default:
		return g.Intn(min(limit, 4) + 1)
	}
}

var names = []string{"a", "b", "pay", "github", "payments", "x-1", "idp", "list"}

// Name returns a name from a small pool (so that writes meet, refer to and
// replace each other), now and then an invalid or overlong one.
func (g *Gen) Name() string {
	switch g.Intn(32) {
	case 30:
		return strings.Repeat("n", g.Size(limits.Name))
	case 31:
		return string(g.Raw(16))
	default:
		return names[g.Intn(len(names))]
	}
}

// Text returns a short string, now and then raw bytes or one at or just
// over limit.
func (g *Gen) Text(limit int) string {
	switch g.Intn(32) {
	case 29:
		return string(g.Raw(8))
	case 30:
		return strings.Repeat("t", limit)
	case 31:
		return strings.Repeat("t", limit+1)
	default:
		return names[g.Intn(len(names))]
	}
}

// Texts returns a list of n texts, n near count.
func (g *Gen) Texts(count, limit int) []string {
	out := make([]string, g.Size(count))
	for i := range out {
		if i < 4 {
			out[i] = g.Text(limit)
		} else {
			out[i] = fmt.Sprint("v", i)
		}
	}
	return out
}

// Meta returns metadata named name, with labels.
func (g *Gen) Meta(name string) *configv1.ResourceMeta {
	m := &configv1.ResourceMeta{Name: name, Owner: g.Text(limits.Owner), Description: g.Text(limits.Description)}
	if n := g.Size(limits.Labels); n > 0 {
		m.Labels = map[string]string{}
		for i := range n {
			m.Labels[fmt.Sprint("k", i)] = g.Text(limits.LabelValue)
		}
	}
	return m
}

// nesting is one way for Cedar source to nest or chain: open repeated,
// then an atom, then close repeated.
type nesting struct{ open, close string }

var cedarNestings = []nesting{
	{"(", ")"}, {"[", "]"}, {"{a: ", "}"}, {"!", ""}, {"-", ""},
	{"if true then ", " else false"}, {"if ", " then true else false"},
	{"1 + ", ""}, {"true || ", ""}, {"true && ", ""}, {"principal.name == \"a\" || ", ""},
	{"[1].contains(", ")"}, {"context has a.", "b"}, {"(1 < ", ")"},
	{"// (((\n", ""}, {"\"((\\\"\" == ", ""}, {"/* [[ */ ", ""},
}

var cedarAtoms = []string{
	"true", "1", "\"s\"", "context.arguments.amount", "principal.name", "[1, 2]", "{a: 1}",
	"context.arguments has amount", "ip(\"10.0.0.1\").isIpv4()", "principal in Team::\"t\"",
	"resource.name like \"*x*\"", "context.arguments.amount > 500",
}

var cedarHeads = []string{
	"permit(principal, action, resource)",
	"forbid(principal in Team::\"payments\", action in Action::\"call_tool\", resource)",
	"permit(principal == Agent::\"a\", action == Action::\"pay__send\", resource)",
	"@id(\"p\")\nforbid(principal, action in [Action::\"call_tool\"], resource is Tool in Upstream::\"pay\")",
}

// Cedar returns a policy set source: a few policies whose conditions nest
// or chain one construct up to a million times (so up to past every
// limit), with raw fuzz bytes mixed in for the lexer.
func (g *Gen) Cedar() string {
	var b strings.Builder
	budget := limits.PolicySetSource + 1<<16
	for p := g.Count(8); p > 0 && b.Len() < budget; p-- {
		if g.Intn(8) == 7 {
			// Many policies: past PoliciesPerSet when the budget allows.
			one := cedarHeads[0] + ";\n"
			b.WriteString(strings.Repeat(one, g.Count((budget-b.Len())/len(one)+1)))
			continue
		}
		b.WriteString(cedarHeads[g.Intn(len(cedarHeads))])
		for c := g.Count(4); c > 0; c-- {
			if g.Bool() {
				b.WriteString(" unless { ")
			} else {
				b.WriteString(" when { ")
			}
			n := cedarNestings[g.Intn(len(cedarNestings))]
			k := g.Count(max(1, (budget-b.Len())/(len(n.open)+len(n.close)+1)))
			b.WriteString(strings.Repeat(n.open, k))
			b.WriteString(cedarAtoms[g.Intn(len(cedarAtoms))])
			if g.Intn(4) == 3 {
				b.WriteString(strings.ToValidUTF8(string(g.Raw(32)), "?"))
			}
			b.WriteString(strings.Repeat(n.close, k))
			b.WriteString(" }")
		}
		if g.Intn(8) == 7 {
			// Many when clauses joined by "&&".
			b.WriteString(strings.Repeat(" when { true }", g.Count(2000)))
		}
		b.WriteString(";\n")
	}
	return b.String()
}

// jsonNestings are ways for a JSON Schema to nest, with the leaf they
// wrap.
var jsonNestings = []nesting{
	{`{"type":"object","properties":{"p":`, `},"required":["p"]}`},
	{`{"type":"array","items":`, `}`},
	{`{"oneOf":[`, `]}`},
	{`[`, `]`},
	{`{"a":"[{\"",`, `}`},
}

// Schema returns a JSON document for an input schema or a JWKS: a valid
// small schema, one nested from a few levels to far past JSONNesting, one
// over ToolDefinition, or raw fuzz bytes.
func (g *Gen) Schema() []byte {
	switch g.Intn(6) {
	case 0:
		return []byte(`{"type":"object","properties":{"amount":{"type":"integer"},"to":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}}},"required":["amount"]}`)
	case 1:
		return nil
	case 2:
		return g.Raw(64)
	case 3:
		return []byte(`{"type":"object","properties":{"s":{"type":"string","description":"` + strings.Repeat("x", g.Size(limits.ToolDefinition)) + `"}}}`)
	}
	n := jsonNestings[g.Intn(len(jsonNestings))]
	k := g.Count(limits.ToolDefinition / len(n.open))
	return []byte(strings.Repeat(n.open, k) + `{"type":"integer"}` + strings.Repeat(n.close, k))
}

// Definition returns a tool definition carrying schema as its input
// schema.
func (g *Gen) Definition(tool string, schema []byte) []byte {
	if len(schema) == 0 || g.Intn(8) == 7 {
		return []byte(fmt.Sprintf(`{"name":%q}`, tool))
	}
	return []byte(fmt.Sprintf(`{"name":%q,"inputSchema":%s}`, tool, schema))
}

// Agent returns an agent.
func (g *Gen) Agent() *configv1.Agent {
	a := &configv1.Agent{Meta: g.Meta(g.Name()), Team: g.Name(), Disabled: g.Intn(4) == 3}
	for i := range g.Size(limits.APIKeys) {
		a.ApiKeys = append(a.ApiKeys, &configv1.ApiKey{Id: fmt.Sprintf("%08x%d", g.Intn(1<<16), i), Sha256: make([]byte, 32)})
	}
	for range g.Size(limits.Identities) {
		switch g.Intn(3) {
		case 0:
			a.CertFingerprints = append(a.CertFingerprints, fmt.Sprintf("sha256:%064x", g.Intn(1<<16)))
		case 1:
			a.SpiffeIds = append(a.SpiffeIds, "spiffe://example.org/"+g.Text(limits.URL))
		default:
			a.JwtSubjects = append(a.JwtSubjects, &configv1.JwtSubject{IdentitySource: g.Name(), Subject: g.Text(limits.JWTSubject)})
		}
	}
	return a
}

// Upstream returns an upstream whose credential names secret.
func (g *Gen) Upstream(secret string) *configv1.Upstream {
	u := &configv1.Upstream{
		Meta:     g.Meta(g.Name()),
		Protocol: configv1.Protocol_PROTOCOL_MCP,
		Url:      "https://" + g.Text(limits.URL) + ".example/mcp",
	}
	switch g.Intn(4) {
	case 0:
		u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: secret}}}
	case 1:
		u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{OauthClientCredentials: &configv1.OAuthClientCredentials{
			TokenUrl: "https://idp.example/token", ClientId: g.Text(limits.ClientID), ClientSecret: secret,
			Scopes: g.Texts(limits.Scopes, limits.Scope), Audience: g.Text(limits.URL),
		}}}
	}
	return u
}

// ToolPin returns a pin of a tool on upstream.
func (g *Gen) ToolPin(upstream string) *configv1.ToolPin {
	tool := g.Name()
	p := &configv1.ToolPin{Meta: &configv1.ResourceMeta{Name: upstream + "/" + tool}, Upstream: upstream, Tool: tool}
	for i := range max(1, g.Size(limits.ToolVersions)) {
		schema := g.Schema()
		p.Versions = append(p.Versions, &configv1.ToolVersion{
			Version:        int64(i + 1),
			DefinitionHash: "sha256:" + g.Text(limits.DefinitionHash),
			Definition:     g.Definition(tool, schema),
			InputSchema:    schema,
			Class:          configv1.ToolClass(1 + g.Intn(3)),
			ApprovedBy:     g.Text(limits.Actor),
		})
	}
	return p
}

// PolicySet returns a policy set (Cedar).
func (g *Gen) PolicySet() *configv1.PolicySet {
	name := g.Name()
	return &configv1.PolicySet{Meta: g.Meta(name), Source: g.Cedar(), Filename: name + ".cedar", Disabled: g.Intn(4) == 3}
}

// IdentitySource returns a JWT issuer with an inline JWKS (Schema), or an
// mTLS authority.
func (g *Gen) IdentitySource() *configv1.IdentitySource {
	s := &configv1.IdentitySource{Meta: g.Meta(g.Name())}
	if g.Intn(4) == 3 {
		s.Kind = &configv1.IdentitySource_MtlsAuthority{MtlsAuthority: &configv1.MtlsAuthority{CaPem: "-----BEGIN CERTIFICATE-----\n" + g.Text(limits.CAPEM) + "\n-----END CERTIFICATE-----\n"}}
		return s
	}
	jwks := []byte(`{"keys":[]}`)
	if g.Bool() {
		jwks = g.Schema()
	}
	s.Kind = &configv1.IdentitySource_JwtIssuer{JwtIssuer: &configv1.JwtIssuer{
		Issuer: "https://" + g.Text(limits.URL), Jwks: jwks, Audiences: g.Texts(limits.Audiences, limits.Audience),
		Algorithms: []string{"RS256"}, AgentClaim: g.Text(limits.Claim), Use: configv1.JwtUse(1 + g.Intn(3)),
	}}
	return s
}

// ValueList returns a value list.
func (g *Gen) ValueList() *configv1.ValueList {
	return &configv1.ValueList{Meta: g.Meta(g.Name()), Values: g.Texts(limits.ListValues, limits.ListValue)}
}

// InspectionRule returns an inspection rule: known detector names mixed
// with raw text, patterns from valid to hostile, a JSON path, a
// classifier, and every enum value including unknown ones.
func (g *Gen) InspectionRule(upstream string) *configv1.InspectionRule {
	names := []string{"pii", "secrets", "exfiltration.url_payload", "injection", "pii.nope", "pattern"}
	r := &configv1.InspectionRule{
		Meta:   g.Meta(g.Name()),
		Scope:  &configv1.InspectionScope{Upstream: upstream},
		Mode:   configv1.InspectionMode(g.Intn(5)),
		Side:   configv1.InspectionSide(g.Intn(4)),
		Action: configv1.InspectionAction(g.Intn(6)),
	}
	for range g.Count(limits.InspectionDetectors + 1) {
		if g.Bool() {
			r.Detectors = append(r.Detectors, names[g.Intn(len(names))])
		} else {
			r.Detectors = append(r.Detectors, g.Text(limits.InspectionDetector))
		}
	}
	patterns := []string{`ACME-[0-9]{6}`, `(a+)+$`, `x*`, `(`, `(?i)secret`}
	for range g.Intn(3) {
		if g.Bool() {
			r.Patterns = append(r.Patterns, patterns[g.Intn(len(patterns))])
		} else {
			r.Patterns = append(r.Patterns, g.Text(limits.InspectionPattern))
		}
	}
	switch g.Intn(4) {
	case 1:
		r.Rows = &configv1.InspectionRowLimit{Path: g.Text(limits.JSONPath), MaxRows: int64(g.Intn(5000)) - 1}
	case 2:
		r.Classifier = &configv1.InspectionClassifier{Url: "http://127.0.0.1:9/" + g.Name(), FailClosed: g.Bool()}
	case 3:
		r.MaxResponseBytes, r.HoldBackBytes = int64(g.Size(1<<20)), int64(g.Size(1<<20))
	}
	return r
}

// PolicyTests returns test cases stored with set: agents, tools, users and
// arguments from the fuzz bytes, counts and sizes at and over the limits.
func (g *Gen) PolicyTests(set string) *configv1.PolicyTests {
	t := &configv1.PolicyTests{Meta: g.Meta(set)}
	for range g.Count(limits.PolicyTestCases + 1) {
		c := &configv1.PolicyTestCase{
			Name: g.Text(limits.PolicyTestField), Agent: g.Name(), Tool: "pay__" + g.Name(), Expect: []string{"allow", "deny", "maybe"}[g.Intn(3)],
			ArgumentsJson: string(g.Schema()), User: g.Text(limits.PolicyTestField), SourceIp: g.Text(limits.PolicyTestField),
			Groups: g.Texts(limits.PolicyTestList, limits.PolicyTestField), Findings: g.Texts(limits.PolicyTestList+1, limits.PolicyTestField),
		}
		if g.Bool() {
			c.Policies, c.CheckPolicies = g.Texts(limits.PolicyTestList, limits.PolicyTestField), true
		}
		t.Cases = append(t.Cases, c)
	}
	return t
}

// Rollout returns a rollout of set whose candidate is Cedar from the fuzz
// bytes, with a plan and gates at and over their limits.
func (g *Gen) Rollout(set string) *configv1.Rollout {
	r := &configv1.Rollout{Meta: g.Meta(g.Name()), PolicySet: set, Source: g.Cedar(), Message: g.Text(limits.PolicyMessage), Plan: &configv1.RolloutPlan{
		Shadow: durationpb.New(time.Duration(g.Intn(1<<16)-8) * time.Minute), Step: durationpb.New(time.Duration(g.Intn(1<<16)-8) * time.Minute),
	}}
	for range g.Count(limits.CanarySteps + 1) {
		r.Plan.CanaryBasisPoints = append(r.Plan.CanaryBasisPoints, uint32(g.Intn(10002)))
	}
	r.Plan.Gates = g.Texts(limits.RolloutGates+1, limits.RolloutGate)
	if g.Bool() {
		r.Plan.Gates = []string{"deny_increase>1%", "min_calls=" + g.Text(8)}
	}
	return r
}

// Setting returns a cluster-wide setting: mostly the known key with
// values at or past the limits, sometimes a key no release knows.
func (g *Gen) Setting() *configv1.Setting {
	name := "mcp.allowed-origins"
	if g.Intn(4) == 3 {
		name = g.Name()
	}
	return &configv1.Setting{Meta: &configv1.ResourceMeta{Name: name}, Values: g.Texts(limits.SettingValues, limits.SettingValue)}
}

// Resource returns a resource of any kind that data planes consume, other
// than a secret (whose shape differs between the planes): a pin names
// upstream, an upstream's credential names secret.
func (g *Gen) Resource(upstream, secret string) proto.Message {
	switch g.Intn(8) {
	case 0:
		return g.Agent()
	case 1:
		return g.Upstream(secret)
	case 2:
		return g.ToolPin(upstream)
	case 3:
		return g.PolicySet()
	case 4:
		return g.IdentitySource()
	case 5:
		return g.Setting()
	case 6:
		return g.InspectionRule(upstream)
	default:
		return g.ValueList()
	}
}
