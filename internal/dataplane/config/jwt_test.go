package config_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/identity/identitytest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

const usersIssuer = "https://people.example"

// financePolicy allows anyone acting for a member of Group::"finance".
const financePolicy = `permit(principal, action, resource) when { context has user && context.user in Group::"finance" };`

// jwtFixture is the configtest snapshot with JWT identity: "corp-idp"
// (inline JWKS, agents and users) binds payer-bot to payer, marketer-bot to
// marketer and retired-bot to the disabled agent; "remote" serves its JWKS
// over HTTP on 127.0.0.1 and binds remote-bot to payer; "people" vouches for
// users only. A second policy set allows calls for finance users.
type jwtFixture struct {
	key, remoteKey, userKey identitytest.Key
	hits                    *atomic.Int32
	compiled                *config.Compiled
}

func newJWTFixture(t *testing.T, edits ...func(*snapshotv1.Snapshot)) *jwtFixture {
	t.Helper()
	f := &jwtFixture{
		key:       identitytest.RSA(t, "corp-1"),
		remoteKey: identitytest.ECDSA(t, "remote-1"),
		userKey:   identitytest.Ed25519(t, "people-1"),
		hits:      &atomic.Int32{},
	}
	jwks := identitytest.JWKS(t, f.remoteKey)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.hits.Add(1)
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)

	s := configtest.Snapshot()
	s.IdentitySources = []*configv1.IdentitySource{
		configtest.JWTIssuerSource(configtest.JWTSource, configtest.JWTIssuer, configv1.JwtUse_JWT_USE_BOTH, identitytest.JWKS(t, f.key), ""),
		configtest.JWTIssuerSource("remote", "https://remote.example", configv1.JwtUse_JWT_USE_AGENTS, nil, srv.URL),
		configtest.JWTIssuerSource("people", usersIssuer, configv1.JwtUse_JWT_USE_USERS, identitytest.JWKS(t, f.userKey), ""),
	}
	configtest.BindJWT(t, s, "payer", configtest.JWTSource, "payer-bot")
	configtest.BindJWT(t, s, "payer", "remote", "remote-bot")
	configtest.BindJWT(t, s, "marketer", configtest.JWTSource, "marketer-bot")
	configtest.BindJWT(t, s, "retired", configtest.JWTSource, "retired-bot")
	s.PolicySets = append(s.PolicySets, &configv1.PolicySet{
		Meta: &configv1.ResourceMeta{Name: "users"}, Source: financePolicy, Filename: "users.cedar", Version: 1,
	})
	for _, edit := range edits {
		edit(s)
	}
	f.compiled = configtest.Compile(t, s)
	return f
}

func (f *jwtFixture) agentToken(t *testing.T, sub string) string {
	return identitytest.Sign(t, f.key, identitytest.NewClaims(configtest.JWTIssuer, sub, configtest.JWTAudience, callAt), false)
}

func (f *jwtFixture) userToken(t *testing.T, name string, groups ...string) string {
	claims := identitytest.NewClaims(usersIssuer, name, configtest.JWTAudience, callAt).With("email", name+"@example.com")
	if groups != nil {
		claims = claims.With("groups", groups)
	}
	return identitytest.Sign(t, f.userKey, claims, false)
}

func TestAgentByJWT(t *testing.T) {
	f := newJWTFixture(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		token     string
		wantAgent string
		wantErrIn string
	}{
		{name: "inline JWKS", token: f.agentToken(t, "payer-bot"), wantAgent: "payer"},
		{name: "JWKS URL", token: identitytest.Sign(t, f.remoteKey, identitytest.NewClaims("https://remote.example", "remote-bot", configtest.JWTAudience, callAt), false), wantAgent: "payer"},
		{name: "disabled agent", token: f.agentToken(t, "retired-bot"), wantErrIn: "not bound to an enabled agent"},
		{name: "unbound subject", token: f.agentToken(t, "nobody"), wantErrIn: "not bound to an enabled agent"},
		{name: "subject bound in another source", token: identitytest.Sign(t, f.remoteKey, identitytest.NewClaims("https://remote.example", "payer-bot", configtest.JWTAudience, callAt), false), wantErrIn: "not bound"},
		{name: "users-only issuer", token: f.userToken(t, "payer-bot"), wantErrIn: "not trusted for agents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := f.compiled.AgentByJWT(ctx, tt.token, callAt)
			if tt.wantErrIn != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrIn) {
					t.Fatalf("AgentByJWT() = %v, %v; want an error containing %q", a.GetMeta().GetName(), err, tt.wantErrIn)
				}
				return
			}
			if err != nil || a.GetMeta().GetName() != tt.wantAgent {
				t.Fatalf("AgentByJWT() = %v, %v; want %q", a.GetMeta().GetName(), err, tt.wantAgent)
			}
		})
	}
	if got := f.hits.Load(); got != 1 {
		t.Errorf("JWKS fetched %d times, want 1", got)
	}
}

// TestJWKSUnderTheSnapshotsEgressPolicy: a JWKS URL is fetched under the
// egress policy the snapshot carries: refused, the keys are never fetched
// and the token is not accepted.
func TestJWKSUnderTheSnapshotsEgressPolicy(t *testing.T) {
	f := newJWTFixture(t, func(s *snapshotv1.Snapshot) {
		s.Egress = &snapshotv1.EgressPolicy{Deny: []string{"127.0.0.0/8"}}
	})
	token := identitytest.Sign(t, f.remoteKey, identitytest.NewClaims("https://remote.example", "remote-bot", configtest.JWTAudience, callAt), false)
	if a, err := f.compiled.AgentByJWT(context.Background(), token, callAt); err == nil {
		t.Fatalf("AgentByJWT() = %v with the JWKS URL's address denied, want an error", a.GetMeta().GetName())
	}
	if got := f.hits.Load(); got != 0 {
		t.Errorf("JWKS fetched %d times under a policy that denies it, want 0", got)
	}
	if a, err := f.compiled.AgentByJWT(context.Background(), f.agentToken(t, "payer-bot"), callAt); err != nil || a.GetMeta().GetName() != "payer" {
		t.Errorf("an inline-JWKS token: %v, %v; want payer", a.GetMeta().GetName(), err)
	}
}

func TestUserByJWT(t *testing.T) {
	f := newJWTFixture(t)
	u, err := f.compiled.UserByJWT(context.Background(), f.userToken(t, "alice", "finance"), callAt)
	if err != nil {
		t.Fatalf("UserByJWT: %v", err)
	}
	want := pipeline.User{Source: "people", Issuer: usersIssuer, Name: "alice", Email: "alice@example.com", Groups: []string{"finance"}}
	if u.Source != want.Source || u.Issuer != want.Issuer || u.Name != want.Name || u.Email != want.Email || strings.Join(u.Groups, ",") != "finance" {
		t.Errorf("user = %+v, want %+v", *u, want)
	}
	// The agents-only remote issuer vouches for no user.
	tok := identitytest.Sign(t, f.remoteKey, identitytest.NewClaims("https://remote.example", "alice", configtest.JWTAudience, callAt), false)
	if _, err := f.compiled.UserByJWT(context.Background(), tok, callAt); err == nil {
		t.Error("a user token from an agents-only issuer was accepted")
	}
}

func TestAuthorizeUser(t *testing.T) {
	f := newJWTFixture(t)
	ctx := context.Background()
	marketer, err := f.compiled.AgentByJWT(ctx, f.agentToken(t, "marketer-bot"), callAt)
	if err != nil {
		t.Fatalf("AgentByJWT: %v", err)
	}
	user := func(name string, groups ...string) *pipeline.User {
		u, err := f.compiled.UserByJWT(ctx, f.userToken(t, name, groups...), callAt)
		if err != nil {
			t.Fatalf("UserByJWT: %v", err)
		}
		return u
	}
	tests := []struct {
		name        string
		user        *pipeline.User
		wantAllowed bool
	}{
		{name: "finance user", user: user("alice", "eng", "finance"), wantAllowed: true},
		{name: "no user", user: nil},
		{name: "user outside finance", user: user("bob", "eng")},
		{name: "user without groups", user: user("carol")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := newCall(f.compiled, marketer, configtest.BalanceAction, `{}`)
			call.User = tt.user
			d := f.compiled.Authorize(ctx, call)
			if d.Allowed != tt.wantAllowed || len(d.Errors) != 0 {
				t.Fatalf("Authorize() = %+v, want allowed %v", d, tt.wantAllowed)
			}
			if tt.wantAllowed && strings.Join(d.Policies, ",") != "users/policy0" {
				t.Errorf("policies = %v", d.Policies)
			}
		})
	}
}

// TestAuthorizeUserAttributes checks the user entity a policy sees.
func TestAuthorizeUserAttributes(t *testing.T) {
	s := configtest.Snapshot()
	s.PolicySets = append(s.PolicySets, &configv1.PolicySet{
		Meta: &configv1.ResourceMeta{Name: "named"}, Filename: "named.cedar", Version: 1,
		Source: `permit(principal, action, resource) when { context has user && context.user == User::"people/alice" && context.user.name == "alice" && context.user has email && context.user.email == "alice@example.com" };`,
	})
	c := configtest.Compile(t, s)
	marketer := mustAgent(t, c, configtest.MarketerKey)
	for _, tt := range []struct {
		user *pipeline.User
		want bool
	}{
		{user: &pipeline.User{Source: "people", Name: "alice", Email: "alice@example.com"}, want: true},
		{user: &pipeline.User{Source: "people", Name: "alice"}},
		{user: &pipeline.User{Source: "corp-idp", Name: "alice", Email: "alice@example.com"}},
	} {
		call := newCall(c, marketer, configtest.BalanceAction, `{}`)
		call.User = tt.user
		if d := c.Authorize(context.Background(), call); d.Allowed != tt.want || len(d.Errors) != 0 {
			t.Errorf("user %+v: Authorize() = %+v, want allowed %v", *tt.user, d, tt.want)
		}
	}
}

func TestCompileRefusesBadIssuer(t *testing.T) {
	s := configtest.Snapshot()
	src := configtest.JWTIssuerSource("bad", configtest.JWTIssuer, configv1.JwtUse_JWT_USE_AGENTS, []byte(`{"keys":[]}`), "")
	src.GetJwtIssuer().Algorithms = []string{"HS256"}
	s.IdentitySources = []*configv1.IdentitySource{src}
	_, err := config.Compile(configtest.Marshal(t, s))
	if err == nil || !strings.Contains(err.Error(), `identity source "bad": algorithm "HS256" is not accepted`) {
		t.Fatalf("Compile() error = %v", err)
	}
}

func TestAmbiguousJWTBinding(t *testing.T) {
	key := identitytest.Ed25519(t, "k")
	s := configtest.Snapshot()
	s.IdentitySources = []*configv1.IdentitySource{
		configtest.JWTIssuerSource(configtest.JWTSource, configtest.JWTIssuer, configv1.JwtUse_JWT_USE_AGENTS, identitytest.JWKS(t, key), ""),
	}
	configtest.BindJWT(t, s, "payer", configtest.JWTSource, "shared")
	configtest.BindJWT(t, s, "marketer", configtest.JWTSource, "shared")
	c := configtest.Compile(t, s)
	tok := identitytest.Sign(t, key, identitytest.NewClaims(configtest.JWTIssuer, "shared", configtest.JWTAudience, callAt), false)
	if a, err := c.AgentByJWT(context.Background(), tok, callAt); err == nil {
		t.Fatalf("a subject bound to two agents authenticated %q", a.GetMeta().GetName())
	}
}
