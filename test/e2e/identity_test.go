package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// limitsPolicy forbids payments of 500 or more, whoever asks.
const limitsPolicy = `@id("payment-cap")
forbid(principal, action == Action::"demo__send_payment", resource)
when { context.arguments.amount >= 500 };
`

// jwtIssuer is an identity provider the test plays: an Ed25519 key
// published as an inline JWKS.
type jwtIssuer struct {
	iss  string
	key  ed25519.PrivateKey
	jwks []byte
}

func newJWTIssuer(t *testing.T, iss string) *jwtIssuer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: string(jose.EdDSA), Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return &jwtIssuer{iss: iss, key: priv, jwks: jwks}
}

// token signs claims for subject, valid from now-1m until now+ttl.
func (j *jwtIssuer) token(t *testing.T, key ed25519.PrivateKey, subject, audience string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	return j.sign(t, jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, "k1", jwt.Claims{
		Issuer: j.iss, Subject: subject, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(ttl)),
	})
}

// sign signs claims with key, naming kid in the header.
func (j *jwtIssuer) sign(t *testing.T, key jose.SigningKey, kid string, claims jwt.Claims) string {
	t.Helper()
	sig, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims are valid claims for subject from this issuer, to be spoiled.
func (j *jwtIssuer) claims(subject string) jwt.Claims {
	now := time.Now()
	return jwt.Claims{
		Issuer: j.iss, Subject: subject, Audience: jwt.Audience{"portcullis"},
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
	}
}

// unsigned is the claims as an alg "none" JWT.
func unsigned(t *testing.T, claims jwt.Claims) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + enc(payload) + "."
}

// usersPolicy lets dev-agent read the weather only on behalf of the
// verified user corp/alice.
const usersPolicy = `@id("alice-weather")
permit(principal == Agent::"dev-agent", action == Action::"demo__get_weather", resource)
when { context has user && context.user == User::"corp/alice" };
`

// agentSPIFFE is the SPIFFE ID of tls-agent's client certificate.
const agentSPIFFE = "spiffe://e2e.example/agent/tls-agent"

// TestAgentsAuthenticateByEveryMethod: an agent with an API key, one with
// a JWT from a trusted issuer and one with a client certificate from a
// trusted CA all call through data planes under the same policy, which
// permits a payment of 100 and forbids one of 900; an agent acting on
// behalf of a verified user is permitted what the user allows; every attack
// is refused; gwctl access check explains the decisions and who-can lists
// exactly the agents that can call.
func TestAgentsAuthenticateByEveryMethod(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	idp := newJWTIssuer(t, "https://idp.e2e.example")
	jwksFile := g.writeFile(t, "jwks.json", string(idp.jwks))
	g.gwctl(t, "identity", "add-jwt", "corp", "--issuer", idp.iss, "--jwks-file", jwksFile,
		"--audience", "portcullis", "--alg", "EdDSA", "--use", "both")
	g.gwctl(t, "agent", "create", "jwt-agent", "--team", "ops", "--no-api-key", "--jwt-subject", "corp=jwt-agent")
	agentCA := newTestCA(t, "agents")
	g.gwctl(t, "identity", "add-mtls", "agents-ca", "--trust-file", g.writeFile(t, "agents-ca.pem", string(agentCA.pem)))
	g.gwctl(t, "agent", "create", "tls-agent", "--team", "ops", "--no-api-key", "--spiffe-id", agentSPIFFE)
	g.applyPolicy(t, "users", usersPolicy)
	version := g.applyPolicy(t, "limits", limitsPolicy)
	awaitVersion(t, dp, version, 20*time.Second)
	tdp := g.startTLSDataplane(t, "dp-tls", agentCA, version)

	good := idp.token(t, idp.key, "jwt-agent", "portcullis", time.Hour)
	for name, cred := range map[string]string{"API key": g.opsKey, "JWT": good} {
		t.Run(name, func(t *testing.T) {
			mustCall(t, dp, cred, actionWeather, weatherArgs("Oslo"))
			mustCall(t, dp, cred, actionPayment, paymentArgs("bob", 100))
			c := mustRefuse(t, dp, cred, actionPayment, paymentArgs("bob", 900), "denied")
			t.Logf("900 refused: %s", c.Text)
		})
	}
	agentCert, _, _ := agentCA.issue(t, agentSPIFFE)
	t.Run("client certificate", func(t *testing.T) {
		opts := tdp.opts(&agentCert, "")
		for _, c := range []struct {
			tool   string
			args   any
			reason string
		}{
			{actionWeather, weatherArgs("Oslo"), ""},
			{actionPayment, paymentArgs("bob", 100), ""},
			{actionPayment, paymentArgs("bob", 900), "denied"},
		} {
			got := tdp.call(t, opts, c.tool, c.args)
			if c.reason == "" && got.Err() != nil {
				t.Fatalf("mTLS call %s: %v", c.tool, got.Err())
			}
			if c.reason != "" && got.Reason != c.reason {
				t.Fatalf("mTLS call %s: reason %q (%v), want %q", c.tool, got.Reason, got.Err(), c.reason)
			}
		}
		// The API key still works on the TLS listener.
		if got := tdp.call(t, tdp.opts(nil, g.opsKey), actionWeather, weatherArgs("Oslo")); got.Err() != nil {
			t.Fatalf("API key over TLS: %v", got.Err())
		}
	})

	alice := idp.token(t, idp.key, "alice", "portcullis", time.Hour)
	t.Run("on behalf of a user", func(t *testing.T) {
		asUser := func(token string) harness.CallOptions {
			o := harness.CallOptions{Bearer: g.devKey}
			if token != "" {
				o.Header = map[string]string{"Portcullis-User-Token": token}
			}
			return o
		}
		call := func(opts harness.CallOptions, tool string, args any) harness.ToolCall {
			t.Helper()
			c, err := harness.CallToolAt(context.Background(), dp.Name, dp.URL+"/mcp", opts, tool, args)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if c := call(asUser(alice), actionWeather, weatherArgs("Oslo")); c.Err() != nil {
			t.Fatalf("dev-agent for alice: %v", c.Err())
		}
		stranger := newJWTIssuer(t, "https://evil.example")
		for name, c := range map[string]struct {
			opts         harness.CallOptions
			tool, reason string
		}{
			"no user":                {asUser(""), actionWeather, "denied"},
			"another user":           {asUser(idp.token(t, idp.key, "bob", "portcullis", time.Hour)), actionWeather, "denied"},
			"a tool alice can't use": {asUser(alice), actionPayment, "denied"},
			"unknown user issuer":    {asUser(stranger.token(t, stranger.key, "alice", "portcullis", time.Hour)), actionWeather, "unauthenticated"},
			"expired user token":     {asUser(idp.token(t, idp.key, "alice", "portcullis", -5*time.Minute)), actionWeather, "unauthenticated"},
			"user token as a string": {asUser("alice"), actionWeather, "unauthenticated"},
		} {
			got := call(c.opts, c.tool, paymentOrWeather(c.tool))
			if got.Err() == nil || got.Reason != c.reason {
				t.Errorf("%s: reason %q (%v), want a refusal with %q", name, got.Reason, got.Err(), c.reason)
			}
		}
	})

	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attacks := map[string]string{
		"no credential":    "",
		"forged signature": idp.token(t, otherKey, "jwt-agent", "portcullis", time.Hour),
		"expired":          idp.token(t, idp.key, "jwt-agent", "portcullis", -5*time.Minute),
		"wrong audience":   idp.token(t, idp.key, "jwt-agent", "someone-else", time.Hour),
		"unbound subject":  idp.token(t, idp.key, "nobody", "portcullis", time.Hour),
		"unknown API key":  "pck_0123456789abcdef_notakeyatall",
		"malformed":        "not-a-credential",
		"tampered JWT":     good[:len(good)-4] + "AAAA",
		"tampered payload": tamperPayload(t, good),
		"alg none":         unsigned(t, idp.claims("jwt-agent")),
		// The classic key confusion: HMAC keyed with the issuer's public key.
		"HS256 with the public key": idp.sign(t, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(idp.key.Public().(ed25519.PublicKey))}, "k1", idp.claims("jwt-agent")),
		"not yet valid":             idp.sign(t, jose.SigningKey{Algorithm: jose.EdDSA, Key: idp.key}, "k1", notYet(idp.claims("jwt-agent"))),
		"wrong issuer":              idp.sign(t, jose.SigningKey{Algorithm: jose.EdDSA, Key: idp.key}, "k1", withIssuer(idp.claims("jwt-agent"), "https://other.example")),
		"unknown kid":               idp.sign(t, jose.SigningKey{Algorithm: jose.EdDSA, Key: idp.key}, "k9", idp.claims("jwt-agent")),
		"oversized credential":      strings.Repeat("A", 32<<10),
	}
	for name, cred := range attacks {
		t.Run("refused/"+name, func(t *testing.T) {
			mustRefuse(t, dp, cred, actionWeather, weatherArgs("Oslo"), "unauthenticated")
		})
	}
	t.Run("refused/huge header", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, dp.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("A", 128<<10))
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 128 KiB header: HTTP %d, want 431", resp.StatusCode)
		}
	})
	t.Run("refused/certificate from an unknown CA", func(t *testing.T) {
		rogue, _, _ := newTestCA(t, "rogue").issue(t, agentSPIFFE)
		for name, opts := range map[string]harness.CallOptions{
			"rogue certificate": tdp.opts(&rogue, ""),
			"no certificate":    tdp.opts(nil, ""),
		} {
			if got := tdp.call(t, opts, actionWeather, weatherArgs("Oslo")); got.Reason != "unauthenticated" {
				t.Errorf("%s: reason %q (%v), want unauthenticated", name, got.Reason, got.Err())
			}
		}
	})

	t.Run("access check and who-can", func(t *testing.T) {
		checkAccess(t, g, "permitted by the team rule", accessWant{allowed: true, policies: []string{"ops/policy0"}},
			"--agent", "jwt-agent", "--tool", actionPayment, "--args", `{"to":"bob","amount":100}`)
		checkAccess(t, g, "forbidden by the cap", accessWant{policies: []string{"limits/payment-cap"}},
			"--agent", "jwt-agent", "--tool", actionPayment, "--args", `{"to":"bob","amount":900}`)
		checkAccess(t, g, "on behalf of alice", accessWant{allowed: true, policies: []string{"users/alice-weather"}},
			"--agent", "dev-agent", "--user", "corp/alice", "--tool", actionWeather, "--args", `{"city":"Oslo"}`)
		checkAccess(t, g, "default deny", accessWant{},
			"--agent", "dev-agent", "--tool", actionPayment, "--args", `{"to":"bob","amount":1}`)
		// The people-facing output names the policy and where it is.
		r := g.gwctl(t, "access", "check", "--agent", "tls-agent", "--tool", actionPayment, "--args", `{"to":"bob","amount":900}`)
		if !strings.Contains(r.Stdout, "DENY") || !strings.Contains(r.Stdout, "limits/payment-cap (limits.cedar:1:1)") {
			t.Errorf("access check output:\n%s", r.Stdout)
		}

		whoCan(t, g, []string{"jwt-agent", "ops-agent", "tls-agent"}, "--tool", actionPayment)
		whoCan(t, g, []string{"jwt-agent", "ops-agent", "tls-agent"}, "--tool", actionWeather)
		whoCan(t, g, []string{"dev-agent", "jwt-agent", "ops-agent", "tls-agent"}, "--tool", actionWeather, "--user", "corp/alice")
	})

	t.Run("policy test", func(t *testing.T) {
		cases := g.writeFile(t, "cases.yaml", `cases:
  - {name: small payment, agent: ops-agent, tool: `+actionPayment+`, args: {to: bob, amount: 100}, expect: allow}
  - {name: large payment, agent: tls-agent, tool: `+actionPayment+`, args: {to: bob, amount: 900}, expect: deny, policies: [limits/payment-cap]}
  - {name: dev reads for alice, agent: dev-agent, user: corp/alice, tool: `+actionWeather+`, args: {city: Oslo}, expect: allow}
  - {name: dev pays, agent: dev-agent, tool: `+actionPayment+`, args: {to: bob, amount: 1}, expect: deny}
`)
		r := g.gwctl(t, "policy", "test", "-f", cases)
		if !strings.Contains(r.Stdout, "4 passed, 0 failed") {
			t.Errorf("policy test:\n%s", r.Stdout)
		}
		// A candidate that raises the cap breaks the "large payment" case:
		// exit 1 and the case named.
		lax := g.writeFile(t, "lax-limits.cedar", `@id("payment-cap")
forbid(principal, action == Action::"demo__send_payment", resource)
when { context.arguments.amount >= 5000 };
`)
		r = harness.Gwctl(t, g.env(), "policy", "test", "-f", cases, "--policy", "limits="+lax, "--timeout", "20s")
		if r.Code != 1 || !strings.Contains(r.Stdout, "FAIL  large payment: expected deny, got allow") || !strings.Contains(r.Stderr, "1 of 4 cases failed") {
			t.Errorf("policy test with the lax candidate: %s", r)
		}
		// Exported, the configuration answers without a control plane.
		exported := filepath.Join(g.dir, "authz.json")
		g.gwctl(t, "access", "export", exported)
		r = harness.Gwctl(t, nil, "policy", "test", "-f", cases, "--snapshot", exported, "--server", "https://127.0.0.1:1")
		if r.Code != 0 || !strings.Contains(r.Stdout, "4 passed, 0 failed") {
			t.Errorf("offline policy test: %s", r)
		}
		b, err := os.ReadFile(exported)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{g.upstreamSecret, g.opsKey[len(g.opsKey)-8:]} {
			if strings.Contains(string(b), secret) {
				t.Errorf("the exported configuration contains a secret")
			}
		}
	})

	// A disabled agent stops working within one snapshot propagation, and
	// who-can stops listing it.
	var out struct {
		Agent struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
		} `json:"agent"`
	}
	harness.GwctlJSON(t, g.env(), &out, "agent", "disable", "jwt-agent", "--timeout", "20s")
	awaitVersion(t, dp, uint64(out.Agent.Meta.Revision), 20*time.Second)
	mustRefuse(t, dp, good, actionWeather, weatherArgs("Oslo"), "unauthenticated")
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	whoCan(t, g, []string{"ops-agent", "tls-agent"}, "--tool", actionPayment)

	// Each stage's own time is measured, so the authorization stage's share
	// of the added latency can be reported.
	m, err := dp.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"authenticate", "gate", "authorize", "validate", "audit", "forward"} {
		if n := m[`portcullis_dataplane_stage_seconds_count{stage="`+stage+`"}`]; n < 1 {
			t.Errorf("stage %s: %v observations in /metrics, want some", stage, n)
		}
	}

	calls, err := g.up.Calls()
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range calls {
		if call.Authorization != "Bearer "+g.upstreamSecret {
			t.Fatalf("the upstream received Authorization %q; only the upstream's own secret may reach it", call.Authorization)
		}
	}
}

func paymentOrWeather(tool string) any {
	if tool == actionPayment {
		return paymentArgs("bob", 1)
	}
	return weatherArgs("Oslo")
}

// accessWant is what "gwctl access check" should answer.
type accessWant struct {
	allowed  bool
	policies []string
}

func checkAccess(t *testing.T, g *gateway, what string, want accessWant, args ...string) {
	t.Helper()
	var got struct {
		Allowed  bool `json:"allowed"`
		Policies []struct {
			ID string `json:"id"`
		} `json:"policies"`
		Errors []string `json:"errors"`
	}
	harness.GwctlJSON(t, g.env(), &got, append([]string{"access", "check", "--timeout", "20s"}, args...)...)
	var ids []string
	for _, p := range got.Policies {
		ids = append(ids, p.ID)
	}
	if got.Allowed != want.allowed || !slices.Equal(ids, want.policies) || len(got.Errors) > 0 {
		t.Errorf("%s: allowed %t by %v (errors %v), want allowed %t by %v", what, got.Allowed, ids, got.Errors, want.allowed, want.policies)
	}
}

func whoCan(t *testing.T, g *gateway, want []string, args ...string) {
	t.Helper()
	var got struct {
		Agents []string `json:"agents"`
	}
	harness.GwctlJSON(t, g.env(), &got, append([]string{"access", "who-can", "--timeout", "20s"}, args...)...)
	if !slices.Equal(got.Agents, want) {
		t.Errorf("who-can %v = %v, want %v", args, got.Agents, want)
	}
}

// tamperPayload changes the subject inside a signed token, keeping its
// signature.
func tamperPayload(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "ops-agent"
	payload, err = json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func notYet(c jwt.Claims) jwt.Claims {
	c.NotBefore = jwt.NewNumericDate(time.Now().Add(10 * time.Minute))
	c.IssuedAt = c.NotBefore
	return c
}

func withIssuer(c jwt.Claims, iss string) jwt.Claims {
	c.Issuer = iss
	return c
}
