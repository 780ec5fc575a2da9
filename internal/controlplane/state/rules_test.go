package state_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// Names in the base state.
const (
	opToken   = "0a0a0a0a0a0a0a0a" // an operator token
	baseAgent = "billing-bot"
	baseKey   = "key0001abc"
	baseSPIFF = "spiffe://corp.example/billing"
	baseCert  = "sha256:" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

// baseSteps build a state with one resource of every kind and an enabled
// policy set reading context.arguments.amount of up__send.
func baseSteps() []statetest.Step {
	agent := statetest.Agent(baseAgent, baseKey)
	agent.SpiffeIds = []string{baseSPIFF}
	agent.CertFingerprints = []string{baseCert}
	user := statetest.Agent("sso-bot", "")
	user.JwtSubjects = []*configv1.JwtSubject{{IdentitySource: "corp-idp", Subject: "sso"}}
	return []statetest.Step{
		{Name: "bootstrap", Cmd: statetest.Bootstrap()},
		{Name: "secret", Cmd: statetest.Create(statetest.Secret("s1"))},
		{Name: "spare secret", Cmd: statetest.Create(statetest.Secret("spare"))},
		{Name: "upstream", Cmd: statetest.Create(statetest.Upstream("up", "s1"))},
		{Name: "spare upstream", Cmd: statetest.Create(statetest.Upstream("spare-up", ""))},
		{Name: "pin", Cmd: statetest.Create(statetest.ToolPin("up", "send", statetest.AmountSchema("integer")))},
		{Name: "identity source", Cmd: statetest.Create(statetest.JWTIssuer("corp-idp"))},
		{Name: "spare identity source", Cmd: statetest.Create(statetest.JWTIssuer("spare-idp"))},
		{Name: "agent", Cmd: statetest.Create(agent)},
		{Name: "agent with a JWT subject", Cmd: statetest.Create(user)},
		{Name: "policy set", Cmd: statetest.Create(statetest.PolicySet("limits", statetest.AmountPolicy("up__send")))},
		{Name: "operator token", Cmd: statetest.Create(statetest.AdminToken(opToken, configv1.Role_ROLE_OPERATOR, nil))},
		{Name: "node", Cmd: statetest.Create(statetest.Node("n2"))},
	}
}

// base returns the base state; its last index is len(baseSteps()).
func base(t testing.TB) *state.State {
	t.Helper()
	return statetest.Run(t, state.New(), 1, baseSteps())
}

// at sets a command's time (seconds after the epoch) and returns it.
func at(c *fsmv1.Command, sec int64) *fsmv1.Command {
	c.Time = statetest.At(sec)
	return c
}

func TestConfigVersion(t *testing.T) {
	tests := []struct {
		name  string
		setup []*fsmv1.Command
		cmd   *fsmv1.Command
		moves bool
	}{
		{name: "put agent", cmd: statetest.Create(statetest.Agent("new-bot", "")), moves: true},
		{name: "put upstream", cmd: statetest.Create(statetest.Upstream("new-up", "")), moves: true},
		{name: "put tool pin", cmd: statetest.Create(statetest.ToolPin("spare-up", "t", "")), moves: true},
		{name: "put policy set", cmd: statetest.Create(statetest.PolicySet("allow", statetest.PermitAll)), moves: true},
		{name: "put disabled policy set", cmd: statetest.Create(&configv1.PolicySet{Meta: statetest.Meta("off"), Source: statetest.PermitAll, Disabled: true}), moves: true},
		{name: "put identity source", cmd: statetest.Create(statetest.JWTIssuer("new-idp")), moves: true},
		{name: "put secret", cmd: statetest.Upsert(statetest.Secret("s1")), moves: true},
		{name: "put admin token", cmd: statetest.Create(statetest.AdminToken("c0c0c0c0c0c0c0c0", configv1.Role_ROLE_AUDITOR, nil))},
		{name: "put node", cmd: statetest.Create(statetest.Node("n3"))},
		{name: "delete agent", cmd: statetest.Delete(resource.Agent, baseAgent), moves: true},
		{name: "delete upstream", cmd: statetest.Delete(resource.Upstream, "spare-up"), moves: true},
		{name: "delete tool pin", setup: []*fsmv1.Command{statetest.Delete(resource.PolicySet, "limits")}, cmd: statetest.Delete(resource.ToolPin, "up/send"), moves: true},
		{name: "delete policy set", cmd: statetest.Delete(resource.PolicySet, "limits"), moves: true},
		{name: "delete identity source", cmd: statetest.Delete(resource.IdentitySource, "spare-idp"), moves: true},
		{name: "delete secret", cmd: statetest.Delete(resource.Secret, "spare"), moves: true},
		{name: "delete admin token", cmd: statetest.Delete(resource.AdminToken, opToken)},
		{name: "delete node", cmd: statetest.Delete(resource.Node, "n2")},
		{name: "put value list", cmd: statetest.Create(statetest.ValueList("payees", "acme")), moves: true},
		{name: "delete value list", setup: []*fsmv1.Command{statetest.Create(statetest.ValueList("payees"))}, cmd: statetest.Delete(resource.ValueList, "payees"), moves: true},
		{name: "touch", cmd: statetest.Touch(), moves: true},
		{name: "freeze", cmd: statetest.SetFreeze(true, "incident"), moves: true},
		{name: "refused freeze", cmd: statetest.SetFreeze(true, strings.Repeat("x", 1025))},
		{name: "refused put of a relevant kind", cmd: statetest.Create(statetest.Upstream("up", ""))},
		{name: "refused delete of a relevant kind", cmd: statetest.Delete(resource.Secret, "s1")},
		{name: "refused bootstrap", cmd: statetest.By(statetest.Bootstrap(), statetest.NodeActor, "bootstrap-again", 0)},
		{name: "deduplicated retry", setup: []*fsmv1.Command{statetest.By(statetest.Touch(), opToken, "req-1", 0)}, cmd: statetest.By(statetest.Create(statetest.Agent("new-bot", "")), opToken, "req-1", 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base(t)
			index := s.Index()
			for _, c := range tt.setup {
				index++
				var res *fsmv1.Result
				if s, res = state.Apply(s, index, c); res.GetError() != nil {
					t.Fatalf("setup: %v", res.GetError())
				}
			}
			prevVersion, prevTime := s.ConfigVersion(), s.ConfigTime()
			index++
			next, res := state.Apply(s, index, at(tt.cmd, 100))
			t.Logf("result: %v", res)
			if tt.moves {
				if res.GetError() != nil {
					t.Fatalf("refused: %v", res.GetError())
				}
				if next.ConfigVersion() != index || !proto.Equal(next.ConfigTime(), statetest.At(100)) {
					t.Fatalf("config version %d at %v, want %d at %v", next.ConfigVersion(), next.ConfigTime(), index, statetest.At(100))
				}
				return
			}
			if next.ConfigVersion() != prevVersion || !proto.Equal(next.ConfigTime(), prevTime) {
				t.Fatalf("config version moved from %d to %d", prevVersion, next.ConfigVersion())
			}
		})
	}
	t.Run("bootstrap", func(t *testing.T) {
		s, _ := state.Apply(state.New(), 7, at(statetest.Bootstrap(), 3))
		if s.ConfigVersion() != 7 || !proto.Equal(s.ConfigTime(), statetest.At(3)) {
			t.Fatalf("config version %d at %v after bootstrap, want 7", s.ConfigVersion(), s.ConfigTime())
		}
	})
}

// agentWith returns a new agent named name carrying one identity.
func agentWith(name string, edit func(*configv1.Agent)) *configv1.Agent {
	a := statetest.Agent(name, "")
	edit(a)
	return a
}

func TestKindRules(t *testing.T) {
	const (
		ok           = fsmv1.ErrorCode_ERROR_CODE_UNSPECIFIED
		invalid      = fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
		notFound     = fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND
		exists       = fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS
		precondition = fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
		aborted      = fsmv1.ErrorCode_ERROR_CODE_ABORTED
	)
	caPEM := selfSignedCAPEM(t)
	disableLimits := statetest.Upsert(&configv1.PolicySet{Meta: statetest.Meta("limits"), Source: statetest.AmountPolicy("up__send"), Disabled: true})
	baseLen := uint64(len(baseSteps()))
	tests := []struct {
		name string
		// fresh starts from the empty state instead of the base state.
		fresh bool
		setup []*fsmv1.Command
		cmd   *fsmv1.Command
		code  fsmv1.ErrorCode
		// msg are regular expressions the refusal's message must match.
		msg []string
		// check inspects the state after an accepted command.
		check func(t *testing.T, s *state.State, res *fsmv1.Result)
	}{
		{
			name: "value list values are stored sorted",
			cmd:  statetest.Create(statetest.ValueList("payees", "initech", "acme", "globex")),
			check: func(t *testing.T, s *state.State, _ *fsmv1.Result) {
				r, _ := s.Get(resource.ValueList, "payees")
				if got := r.GetValueList().GetValues(); !slices.Equal(got, []string{"acme", "globex", "initech"}) {
					t.Fatalf("stored values = %q, want them sorted", got)
				}
			},
		},
		{
			name: "value list with a duplicate value",
			cmd:  statetest.Create(statetest.ValueList("payees", "acme", "globex", "acme")),
			code: invalid, msg: []string{`values\[2\]: "acme" appears more than once`},
		},
		{
			name: "policy set referring to a missing value list",
			cmd:  statetest.Create(statetest.PolicySet("listed", statetest.ListPolicy("payees"))),
			code: precondition, msg: []string{`policy set "listed" refers to value list "payees", which does not exist`, `gwctl valuelist create payees`},
		},
		{
			name: "disabled policy set referring to a missing value list",
			cmd:  statetest.Create(&configv1.PolicySet{Meta: statetest.Meta("listed"), Source: statetest.ListPolicy("payees"), Disabled: true}),
			code: precondition, msg: []string{`value list "payees", which does not exist`},
		},
		{
			name: "policy set update to a missing value list",
			cmd:  statetest.Update(statetest.PolicySet("limits", statetest.ListPolicy("payees"))),
			code: precondition, msg: []string{`value list "payees", which does not exist`},
		},
		{
			name:  "policy set records the value lists it refers to",
			setup: []*fsmv1.Command{statetest.Create(statetest.ValueList("payees", "acme"))},
			cmd:   statetest.Create(statetest.PolicySet("listed", statetest.ListPolicy("payees"))),
			check: func(t *testing.T, s *state.State, _ *fsmv1.Result) {
				r, _ := s.Get(resource.PolicySet, "listed")
				if got := r.GetPolicySet().GetValueLists(); !slices.Equal(got, []string{"payees"}) {
					t.Fatalf("value_lists = %q, want [payees]", got)
				}
			},
		},
		{
			name: "delete a value list in use",
			setup: []*fsmv1.Command{
				statetest.Create(statetest.ValueList("payees", "acme")),
				statetest.Create(statetest.PolicySet("listed", statetest.ListPolicy("payees"))),
			},
			cmd:  statetest.Delete(resource.ValueList, "payees"),
			code: precondition, msg: []string{`value list "payees" is used by policy set "listed"`},
		},
		{
			name: "delete a value list a disabled policy set uses",
			setup: []*fsmv1.Command{
				statetest.Create(statetest.ValueList("payees", "acme")),
				statetest.Create(&configv1.PolicySet{Meta: statetest.Meta("listed"), Source: statetest.ListPolicy("payees"), Disabled: true}),
			},
			cmd:  statetest.Delete(resource.ValueList, "payees"),
			code: precondition, msg: []string{`value list "payees" is used by policy set "listed"`},
		},
		{
			name: "delete a value list no policy set uses any more",
			setup: []*fsmv1.Command{
				statetest.Create(statetest.ValueList("payees", "acme")),
				statetest.Create(statetest.PolicySet("listed", statetest.ListPolicy("payees"))),
				statetest.Update(statetest.PolicySet("listed", statetest.PermitAll)),
			},
			cmd: statetest.Delete(resource.ValueList, "payees"),
		},
		{
			name: "upstream tool prefix defaults to the name",
			cmd:  statetest.Create(statetest.Upstream("new-up", "")),
			check: func(t *testing.T, s *state.State, _ *fsmv1.Result) {
				r, _ := s.Get(resource.Upstream, "new-up")
				if r.GetUpstream().ToolPrefix == nil || r.GetUpstream().GetToolPrefix() != "new-up" {
					t.Fatalf("stored tool_prefix = %v, want \"new-up\"", r.GetUpstream().ToolPrefix)
				}
			},
		},
		{
			name: "upstream explicit empty prefix is kept",
			cmd:  statetest.Create(statetest.WithPrefix(statetest.Upstream("flat", ""), "")),
			check: func(t *testing.T, s *state.State, _ *fsmv1.Result) {
				r, _ := s.Get(resource.Upstream, "flat")
				if r.GetUpstream().ToolPrefix == nil || r.GetUpstream().GetToolPrefix() != "" {
					t.Fatalf("stored tool_prefix = %v, want explicit \"\"", r.GetUpstream().ToolPrefix)
				}
			},
		},
		{
			name: "upstream update with the same prefix",
			cmd:  statetest.Update(statetest.WithPrefix(statetest.Upstream("up", "s1"), "up")),
		},
		{
			name: "upstream prefix cannot change",
			cmd:  statetest.Update(statetest.WithPrefix(statetest.Upstream("up", "s1"), "other")),
			code: precondition, msg: []string{`tool prefix of upstream "up" is "up" and cannot change`},
		},
		{
			name: "upstream prefix taken by another's name",
			cmd:  statetest.Create(statetest.WithPrefix(statetest.Upstream("dup", ""), "up")),
			code: exists, msg: []string{`tool prefix "up" is already used by upstream "up"`},
		},
		{
			name:  "upstream name taken as another's prefix",
			setup: []*fsmv1.Command{statetest.Create(statetest.WithPrefix(statetest.Upstream("x1", ""), "zeta"))},
			cmd:   statetest.Create(statetest.Upstream("zeta", "")),
			code:  exists, msg: []string{`tool prefix "zeta" is already used by upstream "x1"`},
		},
		{
			name:  "two empty prefixes collide",
			setup: []*fsmv1.Command{statetest.Create(statetest.WithPrefix(statetest.Upstream("flat", ""), ""))},
			cmd:   statetest.Create(statetest.WithPrefix(statetest.Upstream("flat2", ""), "")),
			code:  exists, msg: []string{`tool prefix "" is already used by upstream "flat"`},
		},
		{
			name: "upstream referencing a missing secret",
			cmd:  statetest.Create(statetest.Upstream("u2", "nope")),
			code: precondition, msg: []string{`secret "nope" does not exist`},
		},
		{
			name: "upstream update to a missing secret",
			cmd:  statetest.Update(statetest.Upstream("up", "nope")),
			code: precondition, msg: []string{`secret "nope" does not exist`},
		},
		{
			name: "delete a secret in use",
			cmd:  statetest.Delete(resource.Secret, "s1"),
			code: precondition, msg: []string{`secret "s1" is used by upstream "up"`},
		},
		{
			name: "delete an unused secret",
			cmd:  statetest.Delete(resource.Secret, "spare"),
		},
		{
			name: "delete an upstream with pins",
			cmd:  statetest.Delete(resource.Upstream, "up"),
			code: precondition, msg: []string{`upstream "up" still has pinned tools \(\[send\]`},
		},
		{
			name: "tool pin for a missing upstream",
			cmd:  statetest.Create(statetest.ToolPin("ghost", "t", "")),
			code: precondition, msg: []string{`upstream "ghost" does not exist`},
		},
		{
			name: "pin change that breaks an enabled policy set",
			cmd:  statetest.Update(statetest.ToolPin("up", "send", statetest.AmountSchema("string"))),
			code: precondition, msg: []string{`would break an enabled policy set`, `limits\.cedar:\d+:\d+: policy limits/cap: `},
		},
		{
			name: "pin delete that breaks an enabled policy set",
			cmd:  statetest.Delete(resource.ToolPin, "up/send"),
			code: precondition, msg: []string{`limits\.cedar:\d+:\d+: policy limits/cap: `},
		},
		{
			name:  "pin change with only a disabled policy set",
			setup: []*fsmv1.Command{disableLimits},
			cmd:   statetest.Update(statetest.ToolPin("up", "send", statetest.AmountSchema("string"))),
		},
		{
			name: "pin change that keeps the policy valid",
			cmd:  statetest.Update(statetest.ToolPin("up", "send", `{"type":"object","properties":{"amount":{"type":"integer"},"memo":{"type":"string"}},"required":["amount"]}`)),
		},
		{
			name: "policy set with a syntax error",
			cmd:  statetest.Create(statetest.PolicySet("broken", "permit(principal, action, resource)\nwhen { context.arguments.amount > };")),
			code: invalid, msg: []string{`broken\.cedar:2:\d+: syntax error`},
		},
		{
			name: "policy set with a validation error",
			cmd:  statetest.Create(statetest.PolicySet("typo", "@id(\"x\")\nforbid(principal, action == Action::\"up__send\", resource)\nwhen { context.arguments.amout > 5 };")),
			code: invalid, msg: []string{`typo\.cedar:\d+:\d+: policy typo/x: `},
		},
		{
			name: "policy set error uses the given file name",
			cmd:  statetest.Create(&configv1.PolicySet{Meta: statetest.Meta("named"), Filename: "rules/named.cedar", Source: "permit("}),
			code: invalid, msg: []string{`rules/named\.cedar:1:\d+`},
		},
		{
			name: "policy set for an action that is not pinned",
			cmd:  statetest.Create(statetest.PolicySet("ghost", statetest.AmountPolicy("up__nothing"))),
			code: invalid, msg: []string{`ghost\.cedar:\d+:\d+`},
		},
		{
			name: "admin token update",
			cmd:  statetest.Upsert(statetest.AdminToken(opToken, configv1.Role_ROLE_ADMIN, nil)),
			code: precondition, msg: []string{`tokens are never changed`},
		},
		{
			name: "revoke the last valid admin token",
			cmd:  statetest.Delete(resource.AdminToken, statetest.BootToken),
			code: precondition, msg: []string{`last valid admin token`},
		},
		{
			name:  "revoke one of two admin tokens",
			setup: []*fsmv1.Command{statetest.Create(statetest.AdminToken("5e5e5e5e5e5e5e5e", configv1.Role_ROLE_ADMIN, nil))},
			cmd:   statetest.Delete(resource.AdminToken, statetest.BootToken),
		},
		{
			name:  "revoke when the other admin token has expired",
			setup: []*fsmv1.Command{statetest.Create(statetest.AdminToken("5e5e5e5e5e5e5e5e", configv1.Role_ROLE_ADMIN, statetest.At(50)))},
			cmd:   at(statetest.Delete(resource.AdminToken, statetest.BootToken), 100),
			code:  precondition, msg: []string{`last valid admin token`},
		},
		{
			name:  "revoke when the other admin token is still valid",
			setup: []*fsmv1.Command{statetest.Create(statetest.AdminToken("5e5e5e5e5e5e5e5e", configv1.Role_ROLE_ADMIN, statetest.At(500)))},
			cmd:   at(statetest.Delete(resource.AdminToken, statetest.BootToken), 100),
		},
		{
			name: "revoke an operator token",
			cmd:  statetest.Delete(resource.AdminToken, opToken),
		},
		{
			name: "agent API key id already used",
			cmd:  statetest.Create(statetest.Agent("copy-bot", baseKey)),
			code: precondition, msg: []string{`API key id "` + baseKey + `" is already used by agent "` + baseAgent + `"`},
		},
		{
			name: "agent SPIFFE id already used",
			cmd:  statetest.Create(agentWith("copy-bot", func(a *configv1.Agent) { a.SpiffeIds = []string{baseSPIFF} })),
			code: precondition, msg: []string{`SPIFFE id "` + baseSPIFF + `" already identifies agent "` + baseAgent + `"`},
		},
		{
			name: "agent certificate already used",
			cmd:  statetest.Create(agentWith("copy-bot", func(a *configv1.Agent) { a.CertFingerprints = []string{baseCert} })),
			code: precondition, msg: []string{`already identifies agent "` + baseAgent + `"`},
		},
		{
			name: "agent update keeps its own identities",
			cmd: statetest.Update(agentWith(baseAgent, func(a *configv1.Agent) {
				a.ApiKeys = []*configv1.ApiKey{{Id: baseKey, Sha256: statetest.Digest("key:" + baseKey)}}
				a.SpiffeIds, a.CertFingerprints = []string{baseSPIFF}, []string{baseCert}
			})),
		},
		{
			name: "agent JWT subject of a missing identity source",
			cmd: statetest.Create(agentWith("jwt-bot", func(a *configv1.Agent) {
				a.JwtSubjects = []*configv1.JwtSubject{{IdentitySource: "nope", Subject: "x"}}
			})),
			code: precondition, msg: []string{`identity source "nope" does not exist or is not a JWT issuer`},
		},
		{
			name: "delete an identity source in use",
			cmd:  statetest.Delete(resource.IdentitySource, "corp-idp"),
			code: precondition, msg: []string{`identity source "corp-idp" is used by agent "sso-bot"`},
		},
		{
			name: "identity source in use turned into an mTLS authority",
			cmd: statetest.Update(&configv1.IdentitySource{Meta: statetest.Meta("corp-idp"), Kind: &configv1.IdentitySource_MtlsAuthority{
				MtlsAuthority: &configv1.MtlsAuthority{CaPem: caPEM},
			}}),
			code: precondition, msg: []string{`corp-idp`},
		},
		{
			name: "tool pin whose action collides through an empty prefix",
			setup: []*fsmv1.Command{
				disableLimits,
				statetest.Create(statetest.WithPrefix(statetest.Upstream("flat", ""), "")),
			},
			cmd:  statetest.Create(statetest.ToolPin("flat", "up__send", "")),
			code: precondition, msg: []string{`up__send`},
			check: func(t *testing.T, s *state.State, _ *fsmv1.Result) {
				if _, err := s.CedarSchema(); err != nil {
					t.Fatalf("accepted pin broke the schema: %v", err)
				}
			},
		},
		{
			name: "tool pin colliding through an empty prefix with an enabled policy set",
			setup: []*fsmv1.Command{
				statetest.Create(statetest.WithPrefix(statetest.Upstream("flat", ""), "")),
			},
			cmd:  statetest.Create(statetest.ToolPin("flat", "up__send", "")),
			code: precondition, msg: []string{`duplicate action "up__send"`},
		},
		{
			name: "expected revision mismatch on update",
			cmd:  statetest.PutRev(statetest.Agent(baseAgent, ""), fsmv1.WriteMode_WRITE_MODE_UPDATE, 999),
			code: aborted, msg: []string{`agent "billing-bot" is at revision 9, not 999`},
		},
		{
			name: "expected revision of a missing resource",
			cmd:  statetest.PutRev(statetest.Agent("new-bot", ""), fsmv1.WriteMode_WRITE_MODE_UPSERT, 5),
			code: aborted, msg: []string{`agent "new-bot" does not exist \(expected revision 5\)`},
		},
		{
			name: "expected revision mismatch on delete",
			cmd:  statetest.DeleteRev(resource.Agent, baseAgent, 999),
			code: aborted, msg: []string{`is at revision 9, not 999`},
		},
		{
			name: "expected revision that matches",
			cmd:  statetest.PutRev(agentWith(baseAgent, func(a *configv1.Agent) { a.ApiKeys = nil }), fsmv1.WriteMode_WRITE_MODE_UPDATE, 9),
			check: func(t *testing.T, s *state.State, res *fsmv1.Result) {
				r, _ := s.Get(resource.Agent, baseAgent)
				m := resource.Meta(r)
				if m.GetRevision() != res.GetIndex() || !proto.Equal(m.GetCreateTime(), statetest.At(0)) || m.GetCreatedBy() != statetest.BootToken {
					t.Fatalf("meta after update = %v: want revision %d and the creation kept", m, res.GetIndex())
				}
			},
		},
		{
			name: "create on an existing name",
			cmd:  statetest.Create(statetest.Agent(baseAgent, "")),
			code: exists, msg: []string{`agent "billing-bot" already exists`},
		},
		{
			name: "update of a missing name",
			cmd:  statetest.Update(statetest.Agent("ghost", "")),
			code: notFound, msg: []string{`agent "ghost" does not exist`},
		},
		{
			name: "delete of a missing name",
			cmd:  statetest.Delete(resource.Node, "ghost"),
			code: notFound, msg: []string{`node "ghost" does not exist`},
		},
		{
			name: "delete of an unknown kind",
			cmd:  statetest.Delete(resource.Kind("widget"), "x"),
			code: invalid, msg: []string{`unknown kind "widget"`},
		},
		{
			name: "put without a write mode",
			cmd:  statetest.Put(statetest.Agent("new-bot", ""), fsmv1.WriteMode_WRITE_MODE_UNSPECIFIED),
			code: invalid, msg: []string{`write mode is required`},
		},
		{
			name: "put of an invalid resource",
			cmd:  statetest.Create(statetest.Agent("Bad_Name", "")),
			code: invalid, msg: []string{`"Bad_Name" is not a valid name`},
		},
		{
			name: "put without a resource",
			cmd:  &fsmv1.Command{Op: &fsmv1.Command_Put{Put: &fsmv1.Put{Mode: fsmv1.WriteMode_WRITE_MODE_UPSERT}}},
			code: invalid, msg: []string{`no resource given`},
		},
		{
			name: "command without an operation",
			cmd:  &fsmv1.Command{},
			code: invalid, msg: []string{`unknown command`},
		},
		{
			name: "bootstrap twice",
			cmd:  statetest.By(statetest.Bootstrap(), statetest.NodeActor, "bootstrap-again", 0),
			code: precondition, msg: []string{`already bootstrapped \(cluster id ` + statetest.ClusterID + `\)`},
		},
		{
			name:  "bootstrap without a CA",
			fresh: true,
			cmd: func() *fsmv1.Command {
				c := statetest.Bootstrap()
				c.GetBootstrap().GetIdentity().CaCertPem = ""
				return c
			}(),
			code: invalid, msg: []string{`needs a cluster id and a CA`},
		},
		{
			name:  "bootstrap with an invalid token",
			fresh: true,
			cmd: func() *fsmv1.Command {
				c := statetest.Bootstrap()
				c.GetBootstrap().GetAdminToken().Sha256 = nil
				return c
			}(),
			code: invalid, msg: []string{`bootstrap: sha256`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, index := state.New(), uint64(0)
			if !tt.fresh {
				s, index = base(t), baseLen
			}
			for _, c := range tt.setup {
				index++
				var res *fsmv1.Result
				if s, res = state.Apply(s, index, c); res.GetError() != nil {
					t.Fatalf("setup: %v", res.GetError())
				}
			}
			index++
			next, res := state.Apply(s, index, tt.cmd)
			t.Logf("result: %v", res)
			if res.GetDeduplicated() {
				t.Fatal("the command was answered from the dedup table")
			}
			if got := res.GetError().GetCode(); got != tt.code {
				t.Fatalf("code = %v (%q), want %v", got, res.GetError().GetMessage(), tt.code)
			}
			for _, re := range tt.msg {
				if !regexp.MustCompile(re).MatchString(res.GetError().GetMessage()) {
					t.Errorf("message %q does not match %q", res.GetError().GetMessage(), re)
				}
			}
			if tt.code != ok {
				if res.GetResource() != nil {
					t.Errorf("refusal carries a resource: %v", res.GetResource())
				}
				if d := unchangedExceptLog(s, next); len(d) > 0 {
					t.Fatalf("a refused command changed the state:\n%s", strings.Join(d, "\n"))
				}
				return
			}
			if res.GetIndex() != index {
				t.Errorf("result index %d, want %d", res.GetIndex(), index)
			}
			if tt.check != nil {
				tt.check(t, next, res)
			}
		})
	}
}

// unchangedExceptLog reports differences between two states other than the
// applied index and the admin log.
func unchangedExceptLog(a, b *state.State) []string {
	var out []string
	for _, d := range statetest.Diff(a, b, nil) {
		if !strings.HasPrefix(d, "Index:") && !strings.HasPrefix(d, "AdminEvent") {
			out = append(out, d)
		}
	}
	return out
}

// selfSignedCAPEM returns a freshly generated self-signed CA certificate.
func selfSignedCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             statetest.Epoch,
		NotAfter:              statetest.Epoch.AddDate(1, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
