package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
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
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: j.iss, Subject: subject, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(ttl)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAgentsAuthenticateByKeyAndJWT: an agent with an API key and an agent
// with a JWT from a trusted issuer both call through the data plane under
// the same policy, which permits a payment of 100 and forbids one of 900;
// forged and expired JWTs, a disabled agent and no credential are refused.
func TestAgentsAuthenticateByKeyAndJWT(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	idp := newJWTIssuer(t, "https://idp.e2e.example")
	jwksFile := g.writeFile(t, "jwks.json", string(idp.jwks))
	g.gwctl(t, "identity", "add-jwt", "corp", "--issuer", idp.iss, "--jwks-file", jwksFile,
		"--audience", "portcullis", "--alg", "EdDSA", "--use", "both")
	g.gwctl(t, "agent", "create", "jwt-agent", "--team", "ops", "--no-api-key", "--jwt-subject", "corp=jwt-agent")
	version := g.applyPolicy(t, "limits", limitsPolicy)
	awaitVersion(t, dp, version, 20*time.Second)

	good := idp.token(t, idp.key, "jwt-agent", "portcullis", time.Hour)
	for name, cred := range map[string]string{"API key": g.opsKey, "JWT": good} {
		t.Run(name, func(t *testing.T) {
			mustCall(t, dp, cred, "demo__get_weather", weatherArgs("Oslo"))
			mustCall(t, dp, cred, "demo__send_payment", paymentArgs("bob", 100))
			c := mustRefuse(t, dp, cred, "demo__send_payment", paymentArgs("bob", 900), "denied")
			t.Logf("900 refused: %s", c.Text)
		})
	}

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
	}
	for name, cred := range attacks {
		t.Run("refused/"+name, func(t *testing.T) {
			mustRefuse(t, dp, cred, "demo__get_weather", weatherArgs("Oslo"), "unauthenticated")
		})
	}

	// A disabled agent stops working within one snapshot propagation.
	var out struct {
		Agent struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
		} `json:"agent"`
	}
	harness.GwctlJSON(t, g.env(), &out, "agent", "disable", "jwt-agent", "--timeout", "20s")
	awaitVersion(t, dp, uint64(out.Agent.Meta.Revision), 20*time.Second)
	mustRefuse(t, dp, good, "demo__get_weather", weatherArgs("Oslo"), "unauthenticated")
	mustCall(t, dp, g.opsKey, "demo__get_weather", weatherArgs("Oslo"))

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
