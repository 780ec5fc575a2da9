package stages_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/identity/identitytest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

const (
	remoteIssuer = "https://remote.example"
	usersIssuer  = "https://people.example"
	untrustedIss = "https://untrusted.example"
)

// jwtEnv is the configtest snapshot with three JWT sources: corp-idp
// (inline RSA JWKS, agents and users; marketer-bot → marketer, retired-bot
// → the disabled agent), remote (ECDSA JWKS served on 127.0.0.1, agents;
// remote-bot → marketer) and people (Ed25519, users), and a policy set that
// allows calls made for a member of Group::"finance".
type jwtEnv struct {
	cfg                  *config.Compiled
	corp, remote, people identitytest.Key
	untrusted            identitytest.Key
	jwksHits             *atomic.Int32
	now                  time.Time
}

func newJWTEnv(t *testing.T) *jwtEnv {
	t.Helper()
	e := &jwtEnv{
		corp:      identitytest.RSA(t, "corp-1"),
		remote:    identitytest.ECDSA(t, "remote-1"),
		people:    identitytest.Ed25519(t, "people-1"),
		untrusted: identitytest.Ed25519(t, "people-1"),
		jwksHits:  &atomic.Int32{},
		now:       configtest.VersionTime,
	}
	jwks := identitytest.JWKS(t, e.remote)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.jwksHits.Add(1)
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	s := configtest.Snapshot()
	s.IdentitySources = []*configv1.IdentitySource{
		configtest.JWTIssuerSource(configtest.JWTSource, configtest.JWTIssuer, configv1.JwtUse_JWT_USE_BOTH, identitytest.JWKS(t, e.corp), ""),
		configtest.JWTIssuerSource("remote", remoteIssuer, configv1.JwtUse_JWT_USE_AGENTS, nil, srv.URL),
		configtest.JWTIssuerSource("people", usersIssuer, configv1.JwtUse_JWT_USE_USERS, identitytest.JWKS(t, e.people), ""),
	}
	configtest.BindJWT(t, s, "marketer", configtest.JWTSource, "marketer-bot")
	configtest.BindJWT(t, s, "marketer", "remote", "remote-bot")
	configtest.BindJWT(t, s, "retired", configtest.JWTSource, "retired-bot")
	s.PolicySets = append(s.PolicySets, &configv1.PolicySet{
		Meta: &configv1.ResourceMeta{Name: "users"}, Filename: "users.cedar", Version: 1,
		Source: `permit(principal, action, resource) when { context has user && context.user in Group::"finance" };`,
	})
	e.cfg = configtest.Compile(t, s)
	return e
}

func (e *jwtEnv) claims(iss, sub string) identitytest.Claims {
	return identitytest.NewClaims(iss, sub, configtest.JWTAudience, e.now)
}

// agentToken is a valid corp-idp token for marketer.
func (e *jwtEnv) agentToken(t *testing.T) string {
	return identitytest.Sign(t, e.corp, e.claims(configtest.JWTIssuer, "marketer-bot"), false)
}

func (e *jwtEnv) userToken(t *testing.T, name string, groups ...string) string {
	return identitytest.Sign(t, e.people, e.claims(usersIssuer, name).With("groups", groups), false)
}

// outcome is what one call through the default chain did.
type outcome struct {
	err     error
	reached bool // the upstream (terminal) was reached
	call    *pipeline.Call
	audit   *recorder
	// anonymous counts refusals of unidentified callers.
	anonymous *anonCounter
}

// run sends a balance call with the given credentials through the default
// chain.
func (e *jwtEnv) run(t *testing.T, credential, userToken string) outcome {
	t.Helper()
	rec, term, anon := &recorder{}, &terminal{}, &anonCounter{}
	handle := pipeline.Chain(term.handle, stages.Default(stages.Options{Audit: stages.Audit{Writer: rec, Dataplane: "dp-1"}, Anonymous: anon})...)
	call := &pipeline.Call{
		Protocol: "mcp", Method: "tools/call", Op: pipeline.OpCall, Target: pipeline.Target{Kind: pipeline.KindTool, Name: configtest.BalanceAction}, Arguments: json.RawMessage(`{}`),
		Credential: credential, UserToken: userToken, SourceIP: netip.MustParseAddr("10.1.2.3"),
		Start: e.now, Config: e.cfg, Mode: configsyncv1.Mode_MODE_NORMAL,
	}
	_, err := handle(context.Background(), call)
	return outcome{err: err, reached: term.reached, call: call, audit: rec, anonymous: anon}
}

func TestJWTAgentAuthenticates(t *testing.T) {
	e := newJWTEnv(t)
	tests := []struct {
		name  string
		token string
	}{
		{name: "inline JWKS (RS256)", token: e.agentToken(t)},
		{name: "JWKS URL (ES256)", token: identitytest.Sign(t, e.remote, e.claims(remoteIssuer, "remote-bot"), false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := fakeCall(e.cfg, configtest.BalanceAction)
			call.Credential, call.Start = tt.token, e.now
			term := &terminal{}
			_, err := stages.Authenticate{}.Handle(context.Background(), call, term.handle)
			wantRefusal(t, err, "")
			if !term.reached || call.Agent.GetMeta().GetName() != "marketer" || call.User != nil {
				t.Errorf("reached %v, agent %q, user %v", term.reached, call.Agent.GetMeta().GetName(), call.User)
			}
		})
	}
}

func TestJWTAttacksRefused(t *testing.T) {
	e := newJWTEnv(t)
	good := e.claims(configtest.JWTIssuer, "marketer-bot")
	valid := e.agentToken(t)
	parts := strings.Split(valid, ".")
	forged := strings.Split(identitytest.Raw(t, map[string]any{"alg": "RS256"}, good.With("sub", "payer-bot"), nil), ".")[1]
	unknownKID := identitytest.Key{KID: "corp-2", Alg: e.corp.Alg, Private: e.corp.Private}

	tests := []struct {
		name  string
		token string
	}{
		{name: "no credential", token: ""},
		{name: "alg none", token: identitytest.Raw(t, map[string]any{"alg": "none", "kid": "corp-1"}, good, nil)},
		{name: "HS256 keyed with the RSA public key", token: identitytest.HS256WithPublicKey(t, e.corp, good)},
		{name: "expired", token: identitytest.Sign(t, e.corp, good.With("exp", e.now.Add(-time.Hour).Unix()), false)},
		{name: "not yet valid", token: identitytest.Sign(t, e.corp, good.With("nbf", e.now.Add(time.Hour).Unix()), false)},
		{name: "wrong issuer", token: identitytest.Sign(t, e.corp, good.With("iss", "https://evil.example"), false)},
		{name: "wrong audience", token: identitytest.Sign(t, e.corp, good.With("aud", "another-gateway"), false)},
		{name: "unknown kid", token: identitytest.Sign(t, unknownKID, good, false)},
		{name: "tampered payload", token: parts[0] + "." + forged + "." + parts[2]},
		{name: "issuer the snapshot does not trust", token: identitytest.Sign(t, e.untrusted, good.With("iss", untrustedIss), false)},
		{name: "disabled agent", token: identitytest.Sign(t, e.corp, good.With("sub", "retired-bot"), false)},
		{name: "header larger than 8 KiB", token: identitytest.Raw(t, map[string]any{"alg": "RS256", "kid": "corp-1", "pad": strings.Repeat("x", 9<<10)}, good, []byte("sig"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := e.run(t, tt.token, "")
			msg := wantRefusal(t, out.err, pipeline.ReasonUnauthenticated)
			if out.reached || out.call.Agent != nil {
				t.Errorf("upstream reached %v, agent %v", out.reached, out.call.Agent)
			}
			if strings.Contains(msg, "marketer") || strings.Contains(msg, "go-jose") {
				t.Errorf("message %q leaks detail", msg)
			}
			// Unidentified: counted as an anonymous refusal, not recorded.
			if r := out.audit.all(); len(r) != 0 || len(out.anonymous.got) != 1 || !strings.HasSuffix(out.anonymous.got[0], " unauthenticated") {
				t.Errorf("audit records = %v, anonymous refusals %q", r, out.anonymous.got)
			}
		})
	}
}

func TestJWTUnknownKIDFetchesOnce(t *testing.T) {
	e := newJWTEnv(t)
	unknown := identitytest.Key{KID: "remote-9", Alg: e.remote.Alg, Private: e.remote.Private}
	for i := range 10 {
		e.now = configtest.VersionTime.Add(time.Duration(i) * time.Second)
		out := e.run(t, identitytest.Sign(t, unknown, e.claims(remoteIssuer, "remote-bot"), false), "")
		wantRefusal(t, out.err, pipeline.ReasonUnauthenticated)
	}
	if got := e.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times in 10s for repeated unknown kids, want 1", got)
	}
}

func TestJWTUserToken(t *testing.T) {
	e := newJWTEnv(t)
	tests := []struct {
		name       string
		credential string
		userToken  string
		wantReason pipeline.Reason
		wantUser   string
	}{
		{name: "finance user is allowed", credential: e.agentToken(t), userToken: e.userToken(t, "alice", "finance"), wantUser: "alice"},
		{name: "API key with a finance user is allowed", credential: configtest.MarketerKey, userToken: e.userToken(t, "alice", "finance"), wantUser: "alice"},
		{name: "no user token is denied", credential: e.agentToken(t), wantReason: pipeline.ReasonDenied},
		{name: "user outside finance is denied", credential: e.agentToken(t), userToken: e.userToken(t, "bob", "eng"), wantReason: pipeline.ReasonDenied, wantUser: "bob"},
		{name: "user token from an unknown issuer", credential: e.agentToken(t),
			userToken:  identitytest.Sign(t, e.untrusted, e.claims(untrustedIss, "mallory").With("groups", []string{"finance"}), false),
			wantReason: pipeline.ReasonUnauthenticated},
		{name: "user token signed by another key", credential: e.agentToken(t),
			userToken:  identitytest.Sign(t, e.untrusted, e.claims(usersIssuer, "mallory").With("groups", []string{"finance"}), false),
			wantReason: pipeline.ReasonUnauthenticated},
		{name: "expired user token", credential: e.agentToken(t),
			userToken:  identitytest.Sign(t, e.people, e.claims(usersIssuer, "alice").With("exp", e.now.Add(-time.Hour).Unix()), false),
			wantReason: pipeline.ReasonUnauthenticated},
		{name: "a bare user name is not a token", credential: e.agentToken(t), userToken: "alice", wantReason: pipeline.ReasonUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := e.run(t, tt.credential, tt.userToken)
			msg := wantRefusal(t, out.err, tt.wantReason)
			if out.reached != (tt.wantReason == "") {
				t.Errorf("upstream reached = %v", out.reached)
			}
			if tt.wantReason == pipeline.ReasonUnauthenticated && !strings.HasPrefix(msg, "the user token (Portcullis-User-Token) was refused") {
				t.Errorf("message = %q", msg)
			}
			if got := out.call.User; (got == nil) != (tt.wantUser == "") || got != nil && got.Name != tt.wantUser {
				t.Errorf("call.User = %+v, want %q", got, tt.wantUser)
			}
		})
	}
}

// TestJWTWithoutIssuers: a configuration that trusts no JWT issuer
// refuses agent and user tokens alike.
func TestJWTWithoutIssuers(t *testing.T) {
	cfg := newFake()
	for _, tt := range []struct{ name, credential, userToken string }{
		{name: "agent JWT", credential: "eyJh.eyJi.c2ln"},
		{name: "user token", credential: goodKey, userToken: "eyJh.eyJi.c2ln"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			call := fakeCall(cfg, readTool.Action)
			call.Credential, call.UserToken = tt.credential, tt.userToken
			term := &terminal{}
			_, err := pipeline.Chain(term.handle, stages.Authenticate{}, stages.Identify{})(context.Background(), call)
			wantRefusal(t, err, pipeline.ReasonUnauthenticated)
			if term.reached || call.User != nil {
				t.Errorf("reached %v, user %v", term.reached, call.User)
			}
		})
	}
}
