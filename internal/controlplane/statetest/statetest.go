// Package statetest holds fixtures for tests of the control plane's
// replicated state: builders for commands and resources, a scripted command
// sequence that covers every operation and every resource kind, and a
// comparison of two states through their public API.
package statetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/setting"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Fixed names used by the fixtures.
const (
	ClusterID = "7d3c1e52-0b8a-4a44-9a55-3f1f2c0e9b10"
	// BootToken is the id of the bootstrap admin token.
	BootToken = "b00700000000000a"
	// NodeActor is the actor of the bootstrap command.
	NodeActor = "node:n1"
)

// Epoch is the time of the first command of every fixture; At counts from it.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// At returns Epoch plus sec seconds.
func At(sec int64) *timestamppb.Timestamp {
	return timestamppb.New(Epoch.Add(time.Duration(sec) * time.Second))
}

// Digest returns a 32-byte stand-in for a SHA-256 digest, distinct per seed.
func Digest(seed string) []byte {
	b := make([]byte, 32)
	copy(b, seed)
	b[31] = byte(len(seed))
	return b
}

// newCmd returns a command by the bootstrap token at Epoch, without a
// request id.
func newCmd(method string) *fsmv1.Command {
	return &fsmv1.Command{
		Actor:  &configv1.Actor{TokenId: BootToken, Role: configv1.Role_ROLE_ADMIN},
		Time:   At(0),
		Method: method,
	}
}

// Put returns a command that puts m (a resource message) with mode.
func Put(m proto.Message, mode fsmv1.WriteMode) *fsmv1.Command {
	c := newCmd("Test.Put")
	c.Op = &fsmv1.Command_Put{Put: &fsmv1.Put{Resource: resource.Wrap(proto.Clone(m)), Mode: mode}}
	return c
}

// PutRev is Put with an expected revision.
func PutRev(m proto.Message, mode fsmv1.WriteMode, rev uint64) *fsmv1.Command {
	c := Put(m, mode)
	c.GetPut().ExpectedRevision = rev
	return c
}

// Create, Update and Upsert are Put with the matching write mode.
func Create(m proto.Message) *fsmv1.Command { return Put(m, fsmv1.WriteMode_WRITE_MODE_CREATE) }

// Update is Put with WRITE_MODE_UPDATE.
func Update(m proto.Message) *fsmv1.Command { return Put(m, fsmv1.WriteMode_WRITE_MODE_UPDATE) }

// Upsert is Put with WRITE_MODE_UPSERT.
func Upsert(m proto.Message) *fsmv1.Command { return Put(m, fsmv1.WriteMode_WRITE_MODE_UPSERT) }

// Delete returns a command that deletes the resource of kind k named name.
func Delete(k resource.Kind, name string) *fsmv1.Command {
	c := newCmd("Test.Delete")
	c.Op = &fsmv1.Command_Delete{Delete: &fsmv1.Delete{Kind: string(k), Name: name}}
	return c
}

// DeleteRev is Delete with an expected revision.
func DeleteRev(k resource.Kind, name string, rev uint64) *fsmv1.Command {
	c := Delete(k, name)
	c.GetDelete().ExpectedRevision = rev
	return c
}

// Touch returns a Touch command.
func Touch() *fsmv1.Command {
	c := newCmd("Test.Touch")
	c.Op = &fsmv1.Command_Touch{Touch: &fsmv1.Touch{}}
	return c
}

// SetFreeze returns a command that turns the emergency brake on or off.
func SetFreeze(frozen bool, reason string) *fsmv1.Command {
	c := newCmd("Test.SetFreeze")
	c.Op = &fsmv1.Command_SetFreeze{SetFreeze: &fsmv1.SetFreeze{Frozen: frozen, Reason: reason}}
	return c
}

// SignIn returns a command recording a web sign-in from ip.
func SignIn(ip string) *fsmv1.Command {
	c := newCmd("Test.SignIn")
	c.Op = &fsmv1.Command_SignIn{SignIn: &fsmv1.SignIn{SourceIp: ip}}
	return c
}

// Bootstrap returns the command that bootstraps cluster ClusterID with node
// n1 and the admin token BootToken, issued by the node itself.
func Bootstrap() *fsmv1.Command {
	c := newCmd("controlplane --bootstrap")
	c.Actor = &configv1.Actor{TokenId: NodeActor, Role: configv1.Role_ROLE_ADMIN}
	c.RequestId = "bootstrap-" + ClusterID
	c.Op = &fsmv1.Command_Bootstrap{Bootstrap: &fsmv1.Bootstrap{
		Identity: &configv1.ClusterIdentity{
			ClusterId:   ClusterID,
			CaCertPem:   "-----BEGIN CERTIFICATE-----\nnot parsed by the state machine\n-----END CERTIFICATE-----\n",
			CaKeySealed: []byte("sealed-ca-key"),
			KekId:       "kek-1",
			CreateTime:  At(0),
		},
		Node:       Node("n1"),
		AdminToken: AdminToken(BootToken, configv1.Role_ROLE_ADMIN, nil),
	}}
	return c
}

// By sets the actor, request id and time (seconds after Epoch) of c and
// returns it.
func By(c *fsmv1.Command, token, requestID string, sec int64) *fsmv1.Command {
	c.Actor = &configv1.Actor{TokenId: token, Role: configv1.Role_ROLE_ADMIN}
	c.RequestId = requestID
	c.Time = At(sec)
	return c
}

// Meta returns a ResourceMeta with one label (a single map entry keeps the
// wire encoding deterministic; see TestWriteToDeterministic).
func Meta(name string) *configv1.ResourceMeta {
	return &configv1.ResourceMeta{Name: name, Owner: "team-" + name, Description: "fixture " + name, Labels: map[string]string{"env": "test"}}
}

// Secret returns a secret with a stand-in sealed value.
func Secret(name string) *configv1.Secret {
	return &configv1.Secret{Meta: Meta(name), Ciphertext: []byte("sealed:" + name), Size: 12}
}

// Upstream returns an MCP upstream; with secret set it authenticates with
// a bearer credential referencing that secret.
func Upstream(name, secret string) *configv1.Upstream {
	u := &configv1.Upstream{
		Meta:     Meta(name),
		Protocol: configv1.Protocol_PROTOCOL_MCP,
		Url:      "https://" + name + ".example.com/mcp",
	}
	if secret != "" {
		u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: secret}}}
	}
	return u
}

// WithPrefix returns u with an explicit tool prefix.
func WithPrefix(u *configv1.Upstream, prefix string) *configv1.Upstream {
	u.ToolPrefix = &prefix
	return u
}

// AmountSchema is a tool input schema with one required property
// "amount" of the given JSON Schema type.
func AmountSchema(typ string) string {
	return `{"type":"object","properties":{"amount":{"type":"` + typ + `"}},"required":["amount"]}`
}

// ToolPin returns a pin of tool on upstream with one version whose input
// schema is schema (none when empty).
func ToolPin(upstream, tool, schema string) *configv1.ToolPin {
	v := &configv1.ToolVersion{
		Version:        1,
		DefinitionHash: "sha256:" + fmt.Sprintf("%064x", len(schema)),
		Definition:     []byte(`{"name":"` + tool + `"}`),
		Class:          configv1.ToolClass_TOOL_CLASS_MUTATING,
		ApproveTime:    At(0),
		ApprovedBy:     BootToken,
	}
	if schema != "" {
		v.Definition = []byte(`{"name":"` + tool + `","inputSchema":` + schema + `}`)
		v.InputSchema = []byte(schema)
	}
	return &configv1.ToolPin{
		Meta:     &configv1.ResourceMeta{Name: resource.ToolPinName(upstream, tool)},
		Upstream: upstream,
		Tool:     tool,
		Versions: []*configv1.ToolVersion{v},
	}
}

// AmountPolicy is a Cedar source whose policy "cap" reads
// context.arguments.amount of the given action.
func AmountPolicy(action string) string {
	return "@id(\"cap\")\nforbid(principal, action == Action::\"" + action + "\", resource)\nwhen { context.arguments.amount > 500 };\n"
}

// PermitAll is a Cedar source that validates against any schema.
const PermitAll = "permit(principal, action in Action::\"call_tool\", resource);\n"

// PolicySet returns a policy set with the given source.
func PolicySet(name, source string) *configv1.PolicySet {
	return &configv1.PolicySet{Meta: Meta(name), Source: source}
}

// ValueList returns a value list holding values.
func ValueList(name string, values ...string) *configv1.ValueList {
	return &configv1.ValueList{Meta: Meta(name), Values: values}
}

// Setting returns the cluster-wide setting name with values (which must be
// canonical for the state machine to store them).
func Setting(name string, values ...string) *configv1.Setting {
	return &configv1.Setting{Meta: &configv1.ResourceMeta{Name: name}, Values: values}
}

// UpgradedNode returns node name's record as its binary writes it once it
// supports cluster version v.
func UpgradedNode(name string, v uint32) *configv1.Node {
	n := Node(name)
	n.MaxClusterVersion = v
	return n
}

// ListPolicy is a Cedar source, valid against any schema, whose policy
// "listed" refers to the value list named list.
func ListPolicy(list string) string {
	return "@id(\"listed\")\npermit(principal, action in Action::\"call_tool\", resource)\nwhen { List::\"" + list + "\".values.contains(\"acme\") };\n"
}

// InspectionRule returns an enforced request rule looking for
// exfiltration shapes in calls to upstream ("" for every call).
func InspectionRule(name, upstream string) *configv1.InspectionRule {
	return &configv1.InspectionRule{
		Meta:      Meta(name),
		Scope:     &configv1.InspectionScope{Upstream: upstream},
		Mode:      configv1.InspectionMode_INSPECTION_MODE_ENFORCE,
		Side:      configv1.InspectionSide_INSPECTION_SIDE_REQUEST,
		Detectors: []string{"exfiltration", "pii.email"},
		Patterns:  []string{`ACME-[0-9]{6}`},
	}
}

// FindingsPolicy forbids calls in which inspection found exfiltration.
const FindingsPolicy = "@id(\"no-exfil\")\nforbid(principal, action in Action::\"call_tool\", resource)\nwhen { context.findings.contains(\"exfiltration\") };\n"

// JWTIssuer returns an identity source trusting a JWT issuer with an inline,
// empty JWKS.
func JWTIssuer(name string) *configv1.IdentitySource {
	return &configv1.IdentitySource{
		Meta: Meta(name),
		Kind: &configv1.IdentitySource_JwtIssuer{JwtIssuer: &configv1.JwtIssuer{
			Issuer:     "https://" + name + ".example.com",
			Jwks:       []byte(`{"keys":[]}`),
			Audiences:  []string{"portcullis"},
			Algorithms: []string{"ES256"},
			Use:        configv1.JwtUse_JWT_USE_AGENTS,
		}},
	}
}

// AdminToken returns an admin token record; expire nil means it never
// expires.
func AdminToken(name string, role configv1.Role, expire *timestamppb.Timestamp) *configv1.AdminToken {
	return &configv1.AdminToken{Meta: &configv1.ResourceMeta{Name: name}, Role: role, Sha256: Digest("token:" + name), ExpireTime: expire}
}

// Node returns a node record.
func Node(name string) *configv1.Node {
	return &configv1.Node{Meta: &configv1.ResourceMeta{Name: name}, RaftAddr: name + ".internal:7000", ApiAddr: name + ".internal:7443"}
}

// NodeAt returns a node record whose binary supports version.
func NodeAt(name string, version clusterversion.Version) *configv1.Node {
	n := Node(name)
	n.MaxClusterVersion = uint32(version)
	return n
}

// PolicyTests returns the stored tests of set: one case per expectation,
// agent billing-bot calling tool with amount 100.
func PolicyTests(set, tool string, expect ...string) *configv1.PolicyTests {
	t := &configv1.PolicyTests{Meta: &configv1.ResourceMeta{Name: set}}
	for i, e := range expect {
		t.Cases = append(t.Cases, &configv1.PolicyTestCase{
			Name: fmt.Sprintf("case-%d", i+1), Agent: "billing-bot", Tool: tool, ArgumentsJson: `{"amount":100}`, Expect: e,
		})
	}
	return t
}

// Rollout returns a rollout of set to source with a shadow stage of
// shadow seconds and canary steps of 60 s at the given basis points.
func Rollout(name, set, source string, shadow int64, canary ...uint32) *configv1.Rollout {
	r := &configv1.Rollout{
		Meta: &configv1.ResourceMeta{Name: name}, PolicySet: set, Source: source, Message: "stage " + name,
		Plan: &configv1.RolloutPlan{Shadow: durationpb.New(time.Duration(shadow) * time.Second), CanaryBasisPoints: canary,
			Gates: []string{"deny_increase>1%"}},
	}
	if len(canary) > 0 {
		r.Plan.Step = durationpb.New(time.Minute)
	}
	return r
}

// Change returns a RolloutChange of rollout, decided at the given stage
// and canary step.
func Change(rollout string, action fsmv1.RolloutAction, at configv1.RolloutStage, step uint32, reason string) *fsmv1.Command {
	c := newCmd("Test.ChangeRollout")
	c.Op = &fsmv1.Command_RolloutChange{RolloutChange: &fsmv1.RolloutChange{
		Rollout: rollout, Action: action, ExpectStage: at, ExpectStep: step, Reason: reason,
	}}
	return c
}

// Agent returns an agent with one API key whose id is keyID (none when
// empty).
func Agent(name, keyID string) *configv1.Agent {
	a := &configv1.Agent{Meta: Meta(name), Team: "payments"}
	if keyID != "" {
		a.ApiKeys = []*configv1.ApiKey{{Id: keyID, Sha256: Digest("key:" + keyID), CreateTime: At(0)}}
	}
	return a
}

// NodeVersion returns a node record that records the cluster version its
// binary supports.
func NodeVersion(name string, version uint32) *configv1.Node {
	n := Node(name)
	n.MaxClusterVersion = version
	return n
}

// ListLearning returns a learning of the value list name from argument
// of the tool action, per scope.
func ListLearning(name, action, argument string, scope configv1.LearningScope) *configv1.ListLearning {
	return &configv1.ListLearning{Meta: Meta(name), Tool: action, Argument: argument, Scope: scope}
}

// AlertRule returns a generic-format rule that alerts on denials by
// policies tagged tag, signed with the secret named secret.
func AlertRule(name, tag, url, secret string) *configv1.AlertRule {
	return &configv1.AlertRule{
		Meta:  Meta(name),
		Match: []*configv1.AlertMatch{{Kind: &configv1.AlertMatch_PolicyDeny{PolicyDeny: &configv1.PolicyDenyMatch{Tag: tag}}}},
		Webhook: &configv1.AlertWebhook{
			Url: url, Format: configv1.AlertFormat_ALERT_FORMAT_GENERIC, SigningSecret: secret,
		},
	}
}

// Alert returns an outbox alert of rule for the record id.
func Alert(name, rule, recordID string) *configv1.Alert {
	return &configv1.Alert{
		Meta: &configv1.ResourceMeta{Name: name}, Rule: rule, RecordId: recordID, Reason: "fixture alert",
		Event: &configv1.AlertEvent{Kind: "policy_deny", Agent: "billing-bot", Target: "pay__send", Decision: "deny", Policies: []string{"p/x"}, Tags: []string{"security"}},
	}
}

// Consume returns a batch of the audit consumer named consumer that
// follows after batches, moving the chains in marks (name → next).
func Consume(consumer string, after uint64, marks map[string]uint64) *fsmv1.Command {
	c := newCmd("audit consumer " + consumer)
	c.Actor = &configv1.Actor{TokenId: NodeActor, Role: configv1.Role_ROLE_ADMIN}
	op := &fsmv1.ConsumeAudit{Consumer: consumer, AfterBatch: after}
	for _, dp := range sortedKeys(marks) {
		op.Marks = append(op.Marks, &configv1.AuditMark{Dataplane: dp, Next: marks[dp]})
		op.Records += marks[dp] - 1
	}
	c.Op = &fsmv1.Command_ConsumeAudit{ConsumeAudit: op}
	return c
}

func sortedKeys(m map[string]uint64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Learned returns a change adding values to scope of list, under
// generation gen.
func Learned(list, scope string, gen uint64, values ...string) *fsmv1.LearnedChange {
	ch := &fsmv1.LearnedChange{List: list, Scope: scope, Generation: gen}
	for i, v := range values {
		ch.Add = append(ch.Add, &fsmv1.LearnedValue{Value: v, RecordId: fmt.Sprintf("dp1/%d", i+1)})
	}
	return ch
}

// ChangeLearned returns an operator's change of learned lists.
func ChangeLearned(changes ...*fsmv1.LearnedChange) *fsmv1.Command {
	c := newCmd("ValueListService.ApproveValues")
	c.Op = &fsmv1.Command_ChangeLearned{ChangeLearned: &fsmv1.ChangeLearned{Changes: changes}}
	return c
}

// Settle returns the record of attempt of the alert named name.
func Settle(name string, attempt int32, outcome fsmv1.AlertOutcome) *fsmv1.Command {
	c := newCmd("alert delivery")
	c.Actor = &configv1.Actor{TokenId: NodeActor, Role: configv1.Role_ROLE_ADMIN}
	c.Op = &fsmv1.Command_SettleAlert{SettleAlert: &fsmv1.SettleAlert{Name: name, Attempt: attempt, Outcome: outcome, NextAttemptTime: At(3600)}}
	return c
}

// LearnedPolicy is a Cedar source whose policy "learned" reads the
// learned list named list.
func LearnedPolicy(list string) string {
	return "@id(\"learned\")\n@alert(\"security\")\nforbid(principal, action in Action::\"call_tool\", resource)\nunless { context.learned[\"" + list + "\"].contains(\"acme\") };\n"
}

// at sets the time of c (seconds after Epoch) and returns it.
func at(c *fsmv1.Command, sec int64) *fsmv1.Command {
	c.Time = At(sec)
	return c
}

// versioned is Node(name) recording the cluster version of the web
// view's sign-ins.
func versioned(name string) *configv1.Node {
	n := Node(name)
	n.MaxClusterVersion = uint32(clusterversion.WebSignIn)
	return n
}

// Step is one command of a script and what applying it must produce.
type Step struct {
	Name string
	Cmd  *fsmv1.Command
	// WantCode is the refusal's code; unspecified means success.
	WantCode fsmv1.ErrorCode
	// WantDedup says the command is a retry answered from the dedup table.
	WantDedup bool
	// ConfigMoves says the command moves the config version.
	ConfigMoves bool
}

// Script returns a sequence of commands, applied at indexes 1, 2, ..., that
// covers bootstrap, a put (create and update) and a delete of every resource
// kind, refused commands, deduplicated retries, touch, freeze and sign-ins. Every call
// returns fresh messages.
func Script() []Step {
	const op = "0a0a0a0a0a0a0a0a" // operator token id
	agent := Agent("billing-bot", "key0001abc")
	agent.JwtSubjects = []*configv1.JwtSubject{{IdentitySource: "corp-idp", Subject: "billing"}}
	agent.SpiffeIds = []string{"spiffe://corp.example/billing"}
	agentV2 := proto.Clone(agent).(*configv1.Agent)
	agentV2.Meta.Description = "second revision"
	agentV2.Disabled = true
	payV2 := Upstream("pay", "")
	payV2.Url = "https://pay-v2.example.com/mcp"
	secretV2 := Secret("gh-token")
	secretV2.Ciphertext = []byte("sealed:gh-token:v2")
	disabled := PolicySet("limits", AmountPolicy("pay__send"))
	disabled.Disabled = true
	bound := Secret("bound")
	bound.Hosts = []string{"api.example.com"}
	shadowRule := InspectionRule("no-exfil", "pay")
	shadowRule.Mode = configv1.InspectionMode_INSPECTION_MODE_SHADOW
	rebound := Secret("bound")
	rebound.Hosts = []string{"127.0.0.1:7450", "api.example.com"}
	steps := []Step{
		{Name: "bootstrap", Cmd: Bootstrap(), ConfigMoves: true},
		{Name: "create secret", Cmd: By(Create(Secret("gh-token")), BootToken, "r-secret", 10), ConfigMoves: true},
		{Name: "create upstream with bearer secret", Cmd: By(Create(Upstream("github", "gh-token")), BootToken, "r-github", 11), ConfigMoves: true},
		{Name: "create upstream without credential", Cmd: By(Create(Upstream("pay", "")), BootToken, "r-pay", 12), ConfigMoves: true},
		{Name: "create tool pin with integer amount", Cmd: By(Create(ToolPin("pay", "send", AmountSchema("integer"))), BootToken, "r-pin", 13), ConfigMoves: true},
		{Name: "create identity source", Cmd: By(Create(JWTIssuer("corp-idp")), BootToken, "r-idp", 14), ConfigMoves: true},
		{Name: "create agent", Cmd: By(Create(agent), BootToken, "r-agent", 15), ConfigMoves: true},
		{Name: "create policy set on amount", Cmd: By(Create(PolicySet("limits", AmountPolicy("pay__send"))), BootToken, "r-policy", 16), ConfigMoves: true},
		{Name: "create admin token", Cmd: By(Create(AdminToken(op, configv1.Role_ROLE_OPERATOR, At(86400))), BootToken, "r-token", 17)},
		{Name: "create node", Cmd: By(Create(Node("n2")), BootToken, "r-node", 18)},
		{Name: "update agent at revision", Cmd: By(PutRev(agentV2, fsmv1.WriteMode_WRITE_MODE_UPDATE, 7), op, "r-agent-v2", 19), ConfigMoves: true},
		{Name: "update upstream url", Cmd: By(Update(payV2), op, "r-pay-v2", 20), ConfigMoves: true},
		{Name: "refused duplicate create", Cmd: By(Create(Agent("billing-bot", "")), op, "r-dup", 21), WantCode: fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS},
		{Name: "deduplicated retry", Cmd: By(PutRev(agentV2, fsmv1.WriteMode_WRITE_MODE_UPDATE, 7), op, "r-agent-v2", 22), WantDedup: true},
		{Name: "retry of refused command", Cmd: By(Create(Agent("billing-bot", "")), op, "r-dup", 23), WantCode: fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS, WantDedup: true},
		{Name: "touch", Cmd: By(Touch(), BootToken, "r-touch", 24), ConfigMoves: true},
		{Name: "touch without request id", Cmd: By(Touch(), BootToken, "", 25), ConfigMoves: true},
		{Name: "freeze", Cmd: By(SetFreeze(true, "incident 42"), op, "r-freeze", 25), ConfigMoves: true},
		{Name: "refused freeze", Cmd: By(SetFreeze(false, strings.Repeat("x", 1025)), op, "r-freeze-long", 25), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "unfreeze", Cmd: By(SetFreeze(false, ""), op, "r-unfreeze", 25), ConfigMoves: true},
		{Name: "refused learning before every voter supports it", Cmd: By(Create(ListLearning("payees", "pay__send", "to", configv1.LearningScope_LEARNING_SCOPE_AGENT)), BootToken, "r-learn-early", 25), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "refused sign-in before every voter supports it", Cmd: By(SignIn("192.0.2.7"), op, "r-sign-in-early", 25), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "refused inspection rule before every voter supports it", Cmd: By(Create(InspectionRule("no-exfil", "pay")), op, "r-insp-rule-early", 25), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "refused policy on findings before every voter supports it", Cmd: By(Create(PolicySet("findings", FindingsPolicy)), op, "r-findings-early", 25), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "n1 records its cluster version", Cmd: By(Upsert(versioned("n1")), NodeActor, "r-n1-version", 25)},
		{Name: "n2 records its cluster version", Cmd: By(Upsert(versioned("n2")), "node:n2", "r-n2-version", 25)},
		{Name: "sign-in", Cmd: By(SignIn("192.0.2.7"), op, "r-sign-in", 25)},
		{Name: "refused sign-in from no address", Cmd: By(SignIn("not an address"), op, "r-sign-in-bad", 25), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "upsert secret value", Cmd: By(Upsert(secretV2), op, "r-secret-v2", 26), ConfigMoves: true},
		{Name: "disable policy set", Cmd: By(Upsert(disabled), op, "r-policy-off", 27), ConfigMoves: true},
		{Name: "delete policy set", Cmd: By(Delete(resource.PolicySet, "limits"), op, "r-policy-del", 28), ConfigMoves: true},
		{Name: "delete tool pin", Cmd: By(Delete(resource.ToolPin, "pay/send"), op, "r-pin-del", 29), ConfigMoves: true},
		{Name: "delete agent", Cmd: By(Delete(resource.Agent, "billing-bot"), op, "r-agent-del", 30), ConfigMoves: true},
		{Name: "delete identity source", Cmd: By(Delete(resource.IdentitySource, "corp-idp"), op, "r-idp-del", 31), ConfigMoves: true},
		{Name: "delete admin token", Cmd: By(Delete(resource.AdminToken, op), BootToken, "r-token-del", 32)},
		{Name: "delete node", Cmd: By(Delete(resource.Node, "n2"), BootToken, "r-node-del", 33)},
		{Name: "refused sign-in of a revoked token", Cmd: By(SignIn("2001:db8::1"), op, "r-sign-in-revoked", 33), WantCode: fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{Name: "delete upstream", Cmd: By(Delete(resource.Upstream, "github"), BootToken, "r-github-del", 34), ConfigMoves: true},
		{Name: "delete secret", Cmd: By(Delete(resource.Secret, "gh-token"), BootToken, "r-secret-del", 35), ConfigMoves: true},
		{Name: "delete missing", Cmd: By(Delete(resource.Secret, "gh-token"), BootToken, "r-secret-del-2", 36), WantCode: fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{Name: "create value list", Cmd: By(Create(ValueList("payees", "globex", "acme")), BootToken, "r-list", 37), ConfigMoves: true},
		{Name: "create policy set on the list", Cmd: By(Create(PolicySet("listed", ListPolicy("payees"))), BootToken, "r-listed", 38), ConfigMoves: true},
		{Name: "refused delete of a list in use", Cmd: By(Delete(resource.ValueList, "payees"), BootToken, "r-list-del", 39), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "update value list", Cmd: By(Update(ValueList("payees", "initech")), BootToken, "r-list-v2", 40), ConfigMoves: true},
		{Name: "delete policy set on the list", Cmd: By(Delete(resource.PolicySet, "listed"), BootToken, "r-listed-del", 41), ConfigMoves: true},
		{Name: "delete value list", Cmd: By(Delete(resource.ValueList, "payees"), BootToken, "r-list-del-2", 42), ConfigMoves: true},
		{Name: "create secret bound to hosts", Cmd: By(Create(bound), BootToken, "r-bound", 43), ConfigMoves: true},
		{Name: "bind secret to other hosts", Cmd: By(Update(rebound), BootToken, "r-rebind", 44), ConfigMoves: true},
		// Settings are cluster version 4: refused while the only voter,
		// n1, records 3 (the sign-ins' version), stored once it records 4.
		{Name: "refused setting before every voter supports it", Cmd: By(Upsert(Setting(setting.MCPAllowedOrigins, "https://app.example")), BootToken, "r-setting-early", 45), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "node records its cluster version", Cmd: By(Upsert(UpgradedNode("n1", uint32(clusterversion.Settings))), BootToken, "r-n1-settings", 46)},
		{Name: "set a setting", Cmd: By(Upsert(Setting(setting.MCPAllowedOrigins, "https://app.example")), BootToken, "r-setting", 47), ConfigMoves: true},
		{Name: "refused setting not in canonical form", Cmd: By(Upsert(Setting(setting.MCPAllowedOrigins, "HTTPS://app.example")), BootToken, "r-setting-bad", 48), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "refused unknown setting", Cmd: By(Upsert(Setting("mcp.nope", "x")), BootToken, "r-setting-unknown", 49), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "change a setting", Cmd: By(Upsert(Setting(setting.MCPAllowedOrigins, "http://localhost:3000", "https://app.example")), BootToken, "r-setting-2", 50), ConfigMoves: true},
		{Name: "reset a setting", Cmd: By(Delete(resource.Setting, setting.MCPAllowedOrigins), BootToken, "r-setting-del", 51), ConfigMoves: true},
		{Name: "set it again", Cmd: By(Upsert(Setting(setting.MCPAllowedOrigins, "https://app.example")), BootToken, "r-setting-3", 52), ConfigMoves: true},
		{Name: "create LLM upstream", Cmd: By(Create(LLMUpstream("openai", "gpt-4o", "fast")), BootToken, "r-llm", 45), ConfigMoves: true},
		{Name: "refused LLM upstream reusing an alias", Cmd: By(Create(LLMUpstream("other", "gpt-4o", "fast")), BootToken, "r-llm-dup", 46), WantCode: fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS},
		{Name: "create model price", Cmd: By(Upsert(ModelPrice("openai", "gpt-4o", 2_500_000)), BootToken, "r-price", 47), ConfigMoves: true},
		{Name: "refused price of an unlisted model", Cmd: By(Upsert(ModelPrice("openai", "gpt-5", 1)), BootToken, "r-price-bad", 48), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "refused delete of an upstream with prices", Cmd: By(Delete(resource.Upstream, "openai"), BootToken, "r-llm-del", 49), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "update model price", Cmd: By(Upsert(ModelPrice("openai", "gpt-4o", 2_000_000)), BootToken, "r-price-v2", 50), ConfigMoves: true},
		{Name: "create budget", Cmd: By(Create(Budget("research-monthly", 50_000_000)), BootToken, "r-budget", 51), ConfigMoves: true},
		{Name: "update budget", Cmd: By(Update(Budget("research-monthly", 80_000_000)), BootToken, "r-budget-v2", 52), ConfigMoves: true},
		{Name: "delete budget", Cmd: By(Delete(resource.Budget, "research-monthly"), BootToken, "r-budget-del", 53), ConfigMoves: true},
		{Name: "delete model price", Cmd: By(Delete(resource.ModelPrice, "openai/gpt-4o"), BootToken, "r-price-del", 54), ConfigMoves: true},
		{Name: "delete LLM upstream", Cmd: By(Delete(resource.Upstream, "openai"), BootToken, "r-llm-del-2", 55), ConfigMoves: true},
		// Rate limits need cluster version 6; n1 records 4 until it
		// records 6.
		{Name: "refused rate limit before every voter supports it", Cmd: By(Create(RateLimit("per-agent", 100)), BootToken, "r-rl-early", 56), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "node records the rate-limit version", Cmd: By(Upsert(UpgradedNode("n1", uint32(clusterversion.RateLimits))), BootToken, "r-n1-rl", 57)},
		{Name: "create rate limit", Cmd: By(Create(RateLimit("per-agent", 100)), BootToken, "r-rl", 58), ConfigMoves: true},
		{Name: "refused rate limit without a period", Cmd: By(Upsert(&configv1.RateLimit{Meta: Meta("bad"), Rate: 5}), BootToken, "r-rl-bad", 59), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "update rate limit", Cmd: By(Update(RateLimit("per-agent", 200)), BootToken, "r-rl-v2", 60), ConfigMoves: true},
		{Name: "create concurrency limit", Cmd: By(Create(&configv1.RateLimit{Meta: Meta("in-flight"), MaxInFlight: 4, Key: []configv1.RateLimitKey{configv1.RateLimitKey_RATE_LIMIT_KEY_TOOL}}), BootToken, "r-rl-conc", 61), ConfigMoves: true},
		{Name: "delete rate limit", Cmd: By(Delete(resource.RateLimit, "in-flight"), BootToken, "r-rl-del", 62), ConfigMoves: true},
		// Budget usage needs cluster version 7; n1 records 6 until the
		// rollout steps record the binary's version.
		{Name: "refused shadow budget before every voter supports it", Cmd: By(Create(shadow(Budget("shadow-early", 1_000_000))), BootToken, "r-budget-shadow-early", 62), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "refused budget usage before every voter supports it", Cmd: at(withBudgetUsage(Consume("budget", 0, map[string]uint64{"dp1": 3}), BudgetUsageDelta("research-monthly", "team research", 1)), 62), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "create inspection rule", Cmd: By(Create(InspectionRule("no-exfil", "pay")), BootToken, "r-insp-rule", 63), ConfigMoves: true},
		{Name: "refused rule scoped to a missing upstream", Cmd: By(Create(InspectionRule("ghost", "ghost")), BootToken, "r-insp-rule-ghost", 64), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "refused delete of an upstream a rule scopes", Cmd: By(Delete(resource.Upstream, "pay"), BootToken, "r-pay-del", 65), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "create policy set on findings", Cmd: By(Create(PolicySet("findings", FindingsPolicy)), BootToken, "r-findings", 66), ConfigMoves: true},
		{Name: "update inspection rule to shadow", Cmd: By(Update(shadowRule), BootToken, "r-insp-rule-shadow", 67), ConfigMoves: true},
		{Name: "delete inspection rule", Cmd: By(Delete(resource.InspectionRule, "no-exfil"), BootToken, "r-insp-rule-del", 68), ConfigMoves: true},
	}
	steps = append(steps, rolloutSteps(len(steps))...)
	return append(steps, learnedSteps()...)
}

// rolloutSteps stage policy versions, tests and rollouts (cluster version
// PolicyRollouts), starting at index first+1.
func rolloutSteps(first int) []Step {
	const (
		shadow = configv1.RolloutStage_ROLLOUT_STAGE_SHADOW
		canary = configv1.RolloutStage_ROLLOUT_STAGE_CANARY
		done   = configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE
	)
	v1 := PolicySet("limits", AmountPolicy("pay__send"))
	v2 := PolicySet("limits", PermitAll+AmountPolicy("pay__send"))
	v2.Message = "permit everyone below the cap"
	v2.HistoryLimit = 5
	v3 := "@id(\"cap\")\nforbid(principal, action == Action::\"pay__send\", resource)\nwhen { context.arguments.amount > 100 };\n"
	rollback := PolicySet("limits", AmountPolicy("pay__send"))
	rollback.Restores = 1
	missing := PolicySet("limits", AmountPolicy("pay__send"))
	missing.Restores = 99
	testsAt := uint64(first + 6) // the index of "store tests"
	r1 := Rollout("limits-r1", "limits", v3, 60, 2500, 5000)
	r1.TestsRevision = testsAt
	r2 := Rollout("limits-r2", "limits", v3+PermitAll, 60)
	staleTests := Rollout("limits-r0", "limits", v3, 60)
	staleTests.TestsRevision = testsAt - 1
	return []Step{
		{Name: "record node version", Cmd: By(Update(NodeAt("n1", clusterversion.Current())), NodeActor, "r-n1-version-current", 45)},
		{Name: "pin again", Cmd: By(Create(ToolPin("pay", "send", AmountSchema("integer"))), BootToken, "r-pin-2", 46), ConfigMoves: true},
		{Name: "policy set version 1", Cmd: By(Create(v1), BootToken, "r-limits-1", 47), ConfigMoves: true},
		{Name: "policy set version 2", Cmd: By(Update(v2), BootToken, "r-limits-2", 48), ConfigMoves: true},
		{Name: "refused write of a history", Cmd: By(Upsert(&configv1.PolicyHistory{Meta: &configv1.ResourceMeta{Name: "limits"}}), BootToken, "r-history", 49),
			WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "store tests", Cmd: By(Upsert(PolicyTests("limits", "pay__send", "allow")), BootToken, "r-tests", 50)},
		{Name: "refused rollout on stale tests", Cmd: By(Create(staleTests), BootToken, "r-rollout-0", 51), WantCode: fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{Name: "start rollout", Cmd: By(Create(r1), BootToken, "r-rollout-1", 52), ConfigMoves: true},
		{Name: "refused apply during rollout", Cmd: By(Update(v1), BootToken, "r-limits-busy", 53), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "refused second rollout", Cmd: By(Create(r2), BootToken, "r-rollout-2-early", 53), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "promote to canary", Cmd: By(Change("limits-r1", fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE, shadow, 0, ""), NodeActor, "r-promote-1", 54), ConfigMoves: true},
		{Name: "refused stale promote", Cmd: By(Change("limits-r1", fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE, shadow, 0, ""), BootToken, "r-promote-stale", 55),
			WantCode: fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{Name: "pause", Cmd: By(Change("limits-r1", fsmv1.RolloutAction_ROLLOUT_ACTION_PAUSE, canary, 0, "looking"), BootToken, "r-pause", 56)},
		{Name: "resume", Cmd: By(Change("limits-r1", fsmv1.RolloutAction_ROLLOUT_ACTION_RESUME, canary, 0, ""), BootToken, "r-resume", 57)},
		{Name: "next canary step", Cmd: By(Change("limits-r1", fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE, canary, 0, ""), NodeActor, "r-promote-2", 58), ConfigMoves: true},
		{Name: "complete", Cmd: By(Change("limits-r1", fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE, canary, 1, ""), NodeActor, "r-promote-3", 59), ConfigMoves: true},
		{Name: "roll the completed rollout back", Cmd: By(Change("limits-r1", fsmv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK, done, 0, "too strict"), BootToken, "r-rollback-1", 60), ConfigMoves: true},
		{Name: "policy rollback to version 1", Cmd: By(Update(rollback), BootToken, "r-limits-rollback", 61), ConfigMoves: true},
		{Name: "refused rollback to a version not kept", Cmd: By(Update(missing), BootToken, "r-limits-missing", 62), WantCode: fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{Name: "delete tests", Cmd: By(Delete(resource.PolicyTests, "limits"), BootToken, "r-tests-del", 63)},
		{Name: "start a second rollout", Cmd: By(Create(r2), BootToken, "r-rollout-2", 64), ConfigMoves: true},
		{Name: "refused delete of the set in rollout", Cmd: By(Delete(resource.PolicySet, "limits"), BootToken, "r-limits-del-busy", 65), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "abort", Cmd: By(Change("limits-r2", fsmv1.RolloutAction_ROLLOUT_ACTION_ABORT, shadow, 0, "not today"), BootToken, "r-abort", 66), ConfigMoves: true},
		{Name: "delete a finished rollout", Cmd: By(Delete(resource.Rollout, "limits-r1"), BootToken, "r-rollout-del", 67)},
		{Name: "delete policy set with its history", Cmd: By(Delete(resource.PolicySet, "limits"), BootToken, "r-limits-del", 68), ConfigMoves: true},
	}
}

// learnedSteps make value lists learn, approve and forget values, queue
// and settle alerts and move the audit consumers' cursors (cluster version
// AuditConsumers, which every voter supports since the rollout steps
// recorded the node's version).
func learnedSteps() []Step {
	hooks := Secret("hooks-key")
	hooks.Hosts = []string{"hooks.example.com"}
	const op2 = BootToken
	return []Step{
		{Name: "refused learning of a missing list", Cmd: By(Create(ListLearning("payees", "pay__send", "to", configv1.LearningScope_LEARNING_SCOPE_AGENT)), BootToken, "r-learn-missing", 71), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "create value list to learn", Cmd: By(Create(ValueList("payees", "globex")), BootToken, "r-payees", 72), ConfigMoves: true},
		{Name: "create learning", Cmd: By(Create(ListLearning("payees", "pay__send", "to", configv1.LearningScope_LEARNING_SCOPE_AGENT)), BootToken, "r-learn", 73), ConfigMoves: true},
		{Name: "refused delete of a list that learns", Cmd: By(Delete(resource.ValueList, "payees"), BootToken, "r-payees-del", 74), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "approve a value", Cmd: By(ChangeLearned(Learned("payees", "agent:billing-bot", 0, "acme")), op2, "r-approve", 75), ConfigMoves: true},
		{Name: "refused approval in a scope of another kind", Cmd: By(ChangeLearned(Learned("payees", "team:payments", 0, "acme")), op2, "r-approve-team", 76), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "create policy set reading the learned list", Cmd: By(Create(PolicySet("learned", LearnedPolicy("payees"))), BootToken, "r-learned-policy", 77), ConfigMoves: true},
		{Name: "refused stop of a learning a policy reads", Cmd: By(Delete(resource.ListLearning, "payees"), BootToken, "r-unlearn-early", 78), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "create learn cursor", Cmd: at(Consume("learn", 0, map[string]uint64{"dp1": 5}), 79)},
		{Name: "learn batch", Cmd: at(withLearned(Consume("learn", 1, map[string]uint64{"dp1": 9}), Learned("payees", "agent:billing-bot", 1, "initech", "acme")), 80), ConfigMoves: true},
		{Name: "refused replay of the learn batch", Cmd: at(withLearned(Consume("learn", 1, map[string]uint64{"dp1": 9}), Learned("payees", "agent:billing-bot", 1, "umbrella")), 81), WantCode: fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{Name: "refused learn batch of an old generation", Cmd: at(withLearned(Consume("learn", 2, map[string]uint64{"dp1": 10}), Learned("payees", "agent:billing-bot", 7, "umbrella")), 82), WantCode: fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{Name: "forget a value", Cmd: By(forget(ChangeLearned(), "payees", "agent:billing-bot", "initech"), op2, "r-forget", 83), ConfigMoves: true},
		{Name: "refused put of an audit cursor", Cmd: By(Create(&configv1.AuditCursor{Meta: &configv1.ResourceMeta{Name: "learn2"}}), BootToken, "r-cursor-put", 84), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "refused delete of an audit cursor", Cmd: By(Delete(resource.AuditCursor, "learn"), BootToken, "r-cursor-del", 85), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "create secret for alerts", Cmd: By(Create(hooks), BootToken, "r-hooks", 86)},
		{Name: "refused alert rule with a secret bound elsewhere", Cmd: By(Create(AlertRule("sec", "security", "https://other.example.com/hook", "hooks-key")), BootToken, "r-rule-bad", 87), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "create alert rule", Cmd: By(Create(AlertRule("sec", "security", "https://hooks.example.com/portcullis", "hooks-key")), BootToken, "r-rule", 88)},
		{Name: "refused delete of a secret a rule uses", Cmd: By(Delete(resource.Secret, "hooks-key"), BootToken, "r-hooks-del", 89), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "create alert cursor", Cmd: at(Consume("alert", 0, map[string]uint64{"dp1": 9}), 90)},
		{Name: "alert batch", Cmd: at(withAlerts(Consume("alert", 1, map[string]uint64{"dp1": 11}), Alert("a0001", "sec", "dp1/9"), Alert("a0002", "sec", "dp1/10")), 91)},
		{Name: "alert batch queueing an alert again", Cmd: at(withAlerts(Consume("alert", 2, map[string]uint64{"dp1": 12}), Alert("a0001", "sec", "dp1/9")), 92)},
		{Name: "refused put of an alert", Cmd: By(Create(Alert("a0003", "sec", "dp1/12")), BootToken, "r-alert-put", 93), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "alert attempt failed", Cmd: at(Settle("a0001", 1, fsmv1.AlertOutcome_ALERT_OUTCOME_RETRY), 94)},
		{Name: "refused replay of the attempt", Cmd: at(Settle("a0001", 1, fsmv1.AlertOutcome_ALERT_OUTCOME_SENT), 95), WantCode: fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{Name: "alert sent", Cmd: at(Settle("a0001", 2, fsmv1.AlertOutcome_ALERT_OUTCOME_SENT), 96)},
		{Name: "refused attempt of an alert sent", Cmd: at(Settle("a0001", 3, fsmv1.AlertOutcome_ALERT_OUTCOME_SENT), 97), WantCode: fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{Name: "drop alert", Cmd: By(Delete(resource.Alert, "a0002"), op2, "r-drop", 98)},
		{Name: "delete policy set reading the learned list", Cmd: By(Delete(resource.PolicySet, "learned"), BootToken, "r-learned-policy-del", 99), ConfigMoves: true},
		{Name: "change what the list learns", Cmd: By(Update(ListLearning("payees", "pay__send", "payee", configv1.LearningScope_LEARNING_SCOPE_GLOBAL)), BootToken, "r-relearn", 100), ConfigMoves: true},
		{Name: "stop learning", Cmd: By(Delete(resource.ListLearning, "payees"), BootToken, "r-unlearn", 101), ConfigMoves: true},
		{Name: "delete alert rule", Cmd: By(Delete(resource.AlertRule, "sec"), BootToken, "r-rule-del", 102)},
		// Budget usage (cluster version 7, recorded by the rollout steps).
		{Name: "create budget to count", Cmd: By(Create(Budget("ops-monthly", 10_000_000)), BootToken, "r-ops-budget", 103), ConfigMoves: true},
		{Name: "create budget cursor", Cmd: at(Consume("budget", 0, map[string]uint64{"dp1": 12}), 104)},
		{Name: "create shadow budget", Cmd: By(Create(shadow(Budget("ops-shadow", 5_000_000))), BootToken, "r-ops-shadow", 104), ConfigMoves: true},
		{Name: "budget usage batch", Cmd: at(withBudgetUsage(Consume("budget", 1, map[string]uint64{"dp1": 15}), BudgetUsageDelta("ops-monthly", "team research", 3), BudgetUsageDelta("gone", "team research", 1)), 105)},
		{Name: "budget usage batch adding to a key", Cmd: at(withBudgetUsage(Consume("budget", 2, map[string]uint64{"dp1": 16}), BudgetUsageDelta("ops-monthly", "team research", 1)), 106)},
		{Name: "refused budget usage with a key over the limit", Cmd: at(withBudgetUsage(Consume("budget", 3, map[string]uint64{"dp1": 17}), BudgetUsageDelta("ops-monthly", "team "+strings.Repeat("x", 600), 1)), 107), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "refused put of a budget usage", Cmd: By(Upsert(&configv1.BudgetUsage{Meta: Meta("ops-monthly")}), BootToken, "r-usage-put", 108), WantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{Name: "refused delete of a budget usage", Cmd: By(Delete(resource.BudgetUsage, "ops-monthly"), BootToken, "r-usage-del", 109), WantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{Name: "budget usage batch after the budget's window", Cmd: at(withBudgetUsage(Consume("budget", 3, map[string]uint64{"dp1": 18}), BudgetUsageDelta("ops-monthly", "team ops", 1)), 40*24*3600)},
		{Name: "delete the counted budget with its usage", Cmd: By(Delete(resource.Budget, "ops-monthly"), BootToken, "r-ops-budget-del", 40*24*3600+1), ConfigMoves: true},
	}
}

func withBudgetUsage(c *fsmv1.Command, deltas ...*fsmv1.BudgetUsageDelta) *fsmv1.Command {
	c.GetConsumeAudit().BudgetUsage = deltas
	return c
}

// BudgetUsageDelta adds calls (and 1,000 tokens and 1,000 nano-units per
// call) to key of budget, in the month of Epoch in Europe/Oslo (Budget's
// window).
func BudgetUsageDelta(budget, key string, calls int64) *fsmv1.BudgetUsageDelta {
	start, end := budgetkey.Window(configv1.BudgetWindow_BUDGET_WINDOW_MONTH, Epoch, budgetkey.Location("Europe/Oslo"))
	return &fsmv1.BudgetUsageDelta{Budget: budget, Add: []*configv1.BudgetKeyUsage{{
		Key: key, WindowStart: start.Unix(), WindowEnd: end.Unix(), Calls: calls, Tokens: 1000 * calls, CostNanos: 1000 * calls,
	}}}
}

func withLearned(c *fsmv1.Command, changes ...*fsmv1.LearnedChange) *fsmv1.Command {
	c.GetConsumeAudit().Learned = changes
	return c
}

func withAlerts(c *fsmv1.Command, alerts ...*configv1.Alert) *fsmv1.Command {
	c.GetConsumeAudit().Alerts = alerts
	return c
}

func forget(c *fsmv1.Command, list, scope string, values ...string) *fsmv1.Command {
	c.Method = "ValueListService.ForgetValues"
	c.GetChangeLearned().Changes = []*fsmv1.LearnedChange{{List: list, Scope: scope, Remove: values}}
	return c
}

// LeaderWork reports whether cmd is the leader's work (a batch of an audit
// consumer, an alert's delivery attempt), which leaves no admin event and
// is not deduplicated by request id.
func LeaderWork(cmd *fsmv1.Command) bool {
	switch cmd.GetOp().(type) {
	case *fsmv1.Command_ConsumeAudit, *fsmv1.Command_SettleAlert:
		return true
	}
	return false
}

// LLMUpstream returns an OpenAI upstream serving model id under alias.
func LLMUpstream(name, model, alias string) *configv1.Upstream {
	return &configv1.Upstream{Meta: Meta(name), Protocol: configv1.Protocol_PROTOCOL_LLM, Url: "https://api.openai.example/v1",
		Llm: &configv1.LlmUpstream{Provider: configv1.LlmProvider_LLM_PROVIDER_OPENAI, Models: []*configv1.LlmModel{{Id: model, Aliases: []string{alias}}}}}
}

// ModelPrice returns a price table of model of upstream: input and
// output at the given micro-units per million tokens.
func ModelPrice(upstream, model string, micros int64) *configv1.ModelPrice {
	return &configv1.ModelPrice{Meta: Meta(upstream + "/" + model), Upstream: upstream, Model: model,
		Prices: []*configv1.PriceEntry{{InputMicros: micros, OutputMicros: 4 * micros}}}
}

// shadow puts b in shadow mode (cluster version 7).
func shadow(b *configv1.Budget) *configv1.Budget {
	b.Mode = configv1.BudgetMode_BUDGET_MODE_SHADOW
	return b
}

// Budget returns a monthly cost budget per team.
func Budget(name string, micros int64) *configv1.Budget {
	return &configv1.Budget{Meta: Meta(name), Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM, Window: configv1.BudgetWindow_BUDGET_WINDOW_MONTH,
		TimeZone: "Europe/Oslo", MaxCostMicros: micros, Teams: []string{"research"}}
}

// RateLimit returns a limit of perMinute calls per minute per agent and
// tool, in shadow mode.
func RateLimit(name string, perMinute int64) *configv1.RateLimit {
	return &configv1.RateLimit{Meta: Meta(name), Key: []configv1.RateLimitKey{configv1.RateLimitKey_RATE_LIMIT_KEY_AGENT, configv1.RateLimitKey_RATE_LIMIT_KEY_TOOL},
		Rate: perMinute, Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE, Burst: 10, Mode: configv1.RateLimitMode_RATE_LIMIT_MODE_SHADOW, Teams: []string{"research"}}
}

// DedupKey is a (token, request id) pair.
type DedupKey struct{ Token, RequestID string }

// DedupKeys returns the (token, request id) pairs of steps.
func DedupKeys(steps []Step) []DedupKey {
	var out []DedupKey
	for _, s := range steps {
		if s.Cmd.GetRequestId() != "" {
			out = append(out, DedupKey{s.Cmd.GetActor().GetTokenId(), s.Cmd.GetRequestId()})
		}
	}
	return out
}

// Run applies steps to s at indexes first, first+1, ... and returns the
// final state. It fails tb when a step's outcome is not the expected one.
func Run(tb testing.TB, s *state.State, first uint64, steps []Step) *state.State {
	tb.Helper()
	for i, st := range steps {
		var res *fsmv1.Result
		s, res = state.Apply(s, first+uint64(i), st.Cmd)
		if err := CheckResult(st, res); err != nil {
			tb.Fatalf("step %d (%s): %v", i, st.Name, err)
		}
	}
	return s
}

// CheckResult reports how res differs from what st expects.
func CheckResult(st Step, res *fsmv1.Result) error {
	if got := res.GetError().GetCode(); got != st.WantCode {
		return fmt.Errorf("error code %v (%q), want %v", got, res.GetError().GetMessage(), st.WantCode)
	}
	if res.GetDeduplicated() != st.WantDedup {
		return fmt.Errorf("deduplicated = %v, want %v", res.GetDeduplicated(), st.WantDedup)
	}
	return nil
}

// Snapshot returns the snapshot stream of s.
func Snapshot(tb testing.TB, s *state.State) []byte {
	tb.Helper()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil {
		tb.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		tb.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// Restore reads a snapshot stream back.
func Restore(tb testing.TB, snap []byte) *state.State {
	tb.Helper()
	s, err := state.Read(bytes.NewReader(snap))
	if err != nil {
		tb.Fatalf("Read: %v", err)
	}
	return s
}

// Diff compares two states through their public API: every resource of
// every kind, the config version and time, the identity, the applied index,
// the whole admin log and the dedup entries of keys. It returns one line per
// difference.
func Diff(a, b *state.State, keys []DedupKey) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if a.Index() != b.Index() {
		add("Index: %d vs %d", a.Index(), b.Index())
	}
	if a.ConfigVersion() != b.ConfigVersion() {
		add("ConfigVersion: %d vs %d", a.ConfigVersion(), b.ConfigVersion())
	}
	if a.Epoch() != b.Epoch() {
		add("Epoch: %d vs %d", a.Epoch(), b.Epoch())
	}
	if !proto.Equal(a.ConfigTime(), b.ConfigTime()) {
		add("ConfigTime: %v vs %v", a.ConfigTime(), b.ConfigTime())
	}
	if !proto.Equal(a.Identity(), b.Identity()) {
		add("Identity: %v vs %v", a.Identity(), b.Identity())
	}
	if !proto.Equal(a.Freeze(), b.Freeze()) {
		add("Freeze: %v vs %v", a.Freeze(), b.Freeze())
	}
	for _, k := range resource.Kinds {
		ra, _ := a.List(k, "", 1<<30)
		rb, _ := b.List(k, "", 1<<30)
		if len(ra) != len(rb) {
			add("%s: %d resources vs %d", k, len(ra), len(rb))
			continue
		}
		for i := range ra {
			if !proto.Equal(ra[i], rb[i]) {
				add("%s %q: %v vs %v", k, resource.Name(ra[i]), ra[i], rb[i])
			}
		}
	}
	ea, _ := a.AdminEvents(0, state.MaxAdminEvents+1)
	eb, _ := b.AdminEvents(0, state.MaxAdminEvents+1)
	if len(ea) != len(eb) {
		add("AdminEvents: %d vs %d", len(ea), len(eb))
	} else {
		for i := range ea {
			if !proto.Equal(ea[i], eb[i]) {
				add("AdminEvent %d: %v vs %v", i, ea[i], eb[i])
			}
		}
	}
	for _, k := range keys {
		da, oka := a.Dedup(k.Token, k.RequestID)
		db, okb := b.Dedup(k.Token, k.RequestID)
		if oka != okb || !proto.Equal(da, db) {
			add("Dedup(%s, %s): %v %v vs %v %v", k.Token, k.RequestID, oka, da, okb, db)
		}
	}
	return out
}

// Resources returns every resource of s, in kind and name order.
func Resources(s *state.State) []*fsmv1.Resource {
	var out []*fsmv1.Resource
	for _, k := range resource.Kinds {
		s.Each(k, func(r *fsmv1.Resource) bool { out = append(out, r); return true })
	}
	return out
}

// A2AUpstream returns an A2A upstream without a credential.
func A2AUpstream(name string) *configv1.Upstream {
	u := Upstream(name, "")
	u.Protocol = configv1.Protocol_PROTOCOL_A2A
	u.Url = "https://" + name + ".example/a2a"
	return u
}

// CardPin returns the agent-card pin of upstream, whose card lists skills.
func CardPin(upstream string, skills ...string) *configv1.ToolPin {
	card := `{"name":"` + upstream + `","skills":[`
	for i, s := range skills {
		if i > 0 {
			card += ","
		}
		card += `{"id":"` + s + `"}`
	}
	card += `]}`
	return &configv1.ToolPin{
		Meta:     &configv1.ResourceMeta{Name: resource.ToolPinName(upstream, "agent-card")},
		Upstream: upstream,
		Tool:     "agent-card",
		Kind:     configv1.PinKind_PIN_KIND_AGENT_CARD,
		Versions: []*configv1.ToolVersion{{
			Version: 1, DefinitionHash: "sha256:" + fmt.Sprintf("%064x", len(card)), Definition: []byte(card),
			Class: configv1.ToolClass_TOOL_CLASS_MUTATING, ApproveTime: At(0), ApprovedBy: BootToken,
		}},
	}
}
