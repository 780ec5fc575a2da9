package state_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// In the base state, secret "s1" has no hosts (as written before bindings
// existed) and upstream "up" sends it to up.example.com.
const upHost = "up.example.com"

func boundSecret(name string, ciphertext string, hosts ...string) *configv1.Secret {
	s := statetest.Secret(name)
	if ciphertext != "" {
		s.Ciphertext = []byte(ciphertext)
	}
	s.Hosts = hosts
	return s
}

// asOperator makes c a command of an operator token.
func asOperator(c *fsmv1.Command) *fsmv1.Command {
	c.Actor = &configv1.Actor{TokenId: opToken, Role: configv1.Role_ROLE_OPERATOR}
	return c
}

func upstreamAt(name, secret, rawURL string) *configv1.Upstream {
	u := statetest.Upstream(name, secret)
	u.Url = rawURL
	return u
}

func oauthUpstream(name, secret, tokenURL, rawURL string) *configv1.Upstream {
	u := statetest.Upstream(name, "")
	u.Url = rawURL
	u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{
		OauthClientCredentials: &configv1.OAuthClientCredentials{TokenUrl: tokenURL, ClientId: "gw", ClientSecret: secret}}}
	return u
}

// TestSecretBindingRules is how the state machine holds secrets to the
// hosts they are bound to (issue 11, finding 5).
func TestSecretBindingRules(t *testing.T) {
	const (
		ok           = fsmv1.ErrorCode_ERROR_CODE_UNSPECIFIED
		invalid      = fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
		precondition = fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
		denied       = fsmv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	)
	bindS1 := statetest.Upsert(boundSecret("s1", "", upHost))
	secretIs := func(name string, version int64, hosts ...string) func(*testing.T, *state.State) {
		return func(t *testing.T, s *state.State) {
			r, _ := s.Get(resource.Secret, name)
			if got := r.GetSecret(); got.GetVersion() != version || !slices.Equal(got.GetHosts(), hosts) || len(got.GetImplicitHosts()) != 0 {
				t.Errorf("secret %s: version %d hosts %v implicit %v; want version %d hosts %v and no implicit hosts",
					name, got.GetVersion(), got.GetHosts(), got.GetImplicitHosts(), version, hosts)
			}
		}
	}
	tests := []struct {
		name  string
		setup []*fsmv1.Command
		cmd   *fsmv1.Command
		code  fsmv1.ErrorCode
		msg   string
		check func(*testing.T, *state.State)
	}{
		{
			// An older version accepted this; replaying its log must too.
			name: "a secret without hosts goes to any upstream's host (as before bindings)",
			cmd:  statetest.Create(upstreamAt("u2", "s1", "https://elsewhere.example/mcp")),
		},
		{
			name:  "an admin binds a secret to where it is used; the value and version stay",
			cmd:   bindS1,
			check: secretIs("s1", 1, upHost),
		},
		{
			name:  "an operator may write down the implicit binding",
			cmd:   asOperator(statetest.Upsert(boundSecret("s1", "", upHost+":443"))),
			check: secretIs("s1", 1, upHost+":443"),
		},
		{
			name: "an operator may not bind a secret anywhere else",
			cmd:  asOperator(statetest.Upsert(boundSecret("s1", "", "evil.example"))),
			code: denied, msg: `secret "s1" may be sent to up\.example\.com:443; changing that needs an admin token`,
		},
		{
			name:  "an operator may not change an explicit binding, even with a new value",
			setup: []*fsmv1.Command{bindS1},
			cmd:   asOperator(statetest.Upsert(boundSecret("s1", "sealed:new", "evil.example", upHost))),
			code:  denied,
		},
		{
			name:  "a new value without hosts keeps the binding",
			setup: []*fsmv1.Command{bindS1},
			cmd:   asOperator(statetest.Upsert(boundSecret("s1", "sealed:v2"))),
			check: secretIs("s1", 2, upHost),
		},
		{
			name:  "an operator creates a secret with its hosts",
			cmd:   asOperator(statetest.Create(boundSecret("fresh", "", "api.example"))),
			check: secretIs("fresh", 1, "api.example"),
		},
		{
			name: "a binding that leaves out a host an upstream uses",
			cmd:  statetest.Upsert(boundSecret("s1", "", "other.example")),
			code: precondition, msg: `upstream "up" sends secret "s1" to up\.example\.com:443, which other\.example leaves out`,
		},
		{
			name:  "a bound secret is refused to an upstream on another host",
			setup: []*fsmv1.Command{bindS1},
			cmd:   statetest.Create(upstreamAt("exfil", "s1", "http://127.0.0.1:4444/mcp")),
			code:  precondition, msg: `secret "s1" may be sent only to up\.example\.com, and upstream "exfil" would send it to 127\.0\.0\.1:4444`,
		},
		{
			name:  "nor may an upstream move it to another host",
			setup: []*fsmv1.Command{bindS1},
			cmd:   statetest.Update(upstreamAt("up", "s1", "https://evil.example/mcp")),
			code:  precondition, msg: `would send it to evil\.example`,
		},
		{
			name:  "a bound port is held",
			setup: []*fsmv1.Command{statetest.Create(boundSecret("p", "", "127.0.0.1:7450"))},
			cmd:   statetest.Create(upstreamAt("exfil", "p", "http://127.0.0.1:7451/mcp")),
			code:  precondition, msg: `127\.0\.0\.1:7451`,
		},
		{
			name:  "another upstream on a bound host",
			setup: []*fsmv1.Command{bindS1},
			cmd:   statetest.Create(upstreamAt("u2", "s1", "https://up.example.com/other")),
		},
		{
			name:  "an OAuth client secret is bound to the token URL and the upstream (where its token goes)",
			setup: []*fsmv1.Command{statetest.Create(boundSecret("cs", "", "idp.example"))},
			cmd:   statetest.Create(oauthUpstream("o", "cs", "https://idp.example/token", "https://api.example/mcp")),
			code:  precondition, msg: `would send it to api\.example`,
		},
		{
			name:  "an OAuth client secret bound to both",
			setup: []*fsmv1.Command{statetest.Create(boundSecret("cs", "", "api.example", "idp.example"))},
			cmd:   statetest.Create(oauthUpstream("o", "cs", "https://idp.example/token", "https://api.example/mcp")),
		},
		{
			name: "hosts must be canonical",
			cmd:  statetest.Create(boundSecret("x", "", "B.example", "a.example")),
			code: invalid, msg: `hosts: must be in canonical form`,
		},
		{
			name: "hosts must be hosts",
			cmd:  statetest.Create(boundSecret("x", "", "https://a.example/")),
			code: invalid, msg: `hosts: .*not a URL`,
		},
		{
			name: "implicit hosts are output only",
			cmd: func() *fsmv1.Command {
				s := boundSecret("x", "", "a.example")
				s.ImplicitHosts = []string{"evil.example"}
				return statetest.Create(s)
			}(),
			check: secretIs("x", 1, "a.example"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, index := base(t), uint64(len(baseSteps()))
			for _, c := range tt.setup {
				index++
				var res *fsmv1.Result
				if s, res = state.Apply(s, index, c); res.GetError() != nil {
					t.Fatalf("setup: %v", res.GetError())
				}
			}
			index++
			next, res := state.Apply(s, index, tt.cmd)
			if got := res.GetError().GetCode(); got != tt.code {
				t.Fatalf("code = %v (%q), want %v", got, res.GetError().GetMessage(), tt.code)
			}
			if tt.msg != "" && !regexp.MustCompile(tt.msg).MatchString(res.GetError().GetMessage()) {
				t.Errorf("message %q does not match %q", res.GetError().GetMessage(), tt.msg)
			}
			if tt.code != ok {
				if d := unchangedExceptLog(s, next); len(d) > 0 {
					t.Fatalf("a refused command changed the state: %v", d)
				}
				return
			}
			if tt.check != nil {
				tt.check(t, next)
			}
		})
	}
}

// TestSecretHosts: a secret's own hosts, else those of the upstreams that
// use it, computed the same way on every replica.
func TestSecretHosts(t *testing.T) {
	s := base(t)
	s, _ = state.Apply(s, 100, statetest.Create(upstreamAt("u2", "s1", "http://127.0.0.1:7450/mcp")))
	if hosts, implicit := s.SecretHosts("s1"); !implicit || !slices.Equal(hosts, []string{"127.0.0.1:7450", upHost + ":443"}) {
		t.Errorf("SecretHosts(s1) = %v, %v; want the hosts of up and u2, implicit", hosts, implicit)
	}
	if hosts, implicit := s.SecretHosts("spare"); !implicit || len(hosts) != 0 {
		t.Errorf("SecretHosts(spare) = %v, %v; want none (unused), implicit", hosts, implicit)
	}
	s, _ = state.Apply(s, 101, statetest.Upsert(boundSecret("s1", "", "127.0.0.1:7450", upHost, "z.example")))
	if hosts, implicit := s.SecretHosts("s1"); implicit || !slices.Equal(hosts, []string{"127.0.0.1:7450", upHost, "z.example"}) {
		t.Errorf("SecretHosts(s1) after binding = %v, %v", hosts, implicit)
	}
	if hosts, _ := s.SecretHosts("missing"); len(hosts) != 0 {
		t.Errorf("a missing secret may go to %v", hosts)
	}
}
