package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/identity"
	"github.com/portcullis-gw/portcullis/internal/dataplane/identity/identitytest"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

const (
	corpIss   = "https://idp.example"
	peopleIss = "https://people.example"
	aud       = "portcullis"
)

var now = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

// keys are generated once: RSA generation is slow under -race.
var (
	keysOnce             sync.Once
	rsaKey, ecKey, edKey identitytest.Key
	otherRSA             identitytest.Key
)

func testKeys(t testing.TB) {
	keysOnce.Do(func() {
		rsaKey = identitytest.RSA(t, "r1")
		ecKey = identitytest.ECDSA(t, "e1")
		edKey = identitytest.Ed25519(t, "d1")
		otherRSA = identitytest.RSA(t, "r1") // same kid, other key
	})
}

func source(name string, j *configv1.JwtIssuer) *configv1.IdentitySource {
	return &configv1.IdentitySource{
		Meta: &configv1.ResourceMeta{Name: name},
		Kind: &configv1.IdentitySource_JwtIssuer{JwtIssuer: j},
	}
}

// newVerifier trusts "corp" (inline, all three keys, agents and users) and
// "people" (inline, the EC key, users only).
func newVerifier(t testing.TB) *identity.Verifier {
	t.Helper()
	testKeys(t)
	v, err := identity.New([]*configv1.IdentitySource{
		source("corp", &configv1.JwtIssuer{
			Issuer: corpIss, Jwks: identitytest.JWKS(t, rsaKey, ecKey, edKey),
			Audiences: []string{"other", aud}, Use: configv1.JwtUse_JWT_USE_BOTH,
		}),
		source("people", &configv1.JwtIssuer{
			Issuer: peopleIss, Jwks: identitytest.JWKS(t, ecKey), Audiences: []string{aud},
			Algorithms: []string{"ES256"}, UserClaim: "email", Use: configv1.JwtUse_JWT_USE_USERS,
		}),
	}, identity.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func TestVerifyAgent(t *testing.T) {
	v := newVerifier(t)
	for _, k := range []identitytest.Key{rsaKey, ecKey, edKey} {
		t.Run(string(k.Alg), func(t *testing.T) {
			tok := identitytest.Sign(t, k, identitytest.NewClaims(corpIss, "billing-bot", aud, now), false)
			id, err := v.VerifyAgent(context.Background(), tok, now)
			if err != nil {
				t.Fatalf("VerifyAgent: %v", err)
			}
			if id.Source != "corp" || id.Name != "billing-bot" || id.Issuer != corpIss {
				t.Errorf("identity = %+v", id)
			}
		})
	}
}

func TestVerifyUser(t *testing.T) {
	v := newVerifier(t)
	claims := identitytest.NewClaims(corpIss, "alice", aud, now).
		With("email", "alice@example.com").With("groups", []string{"finance", "eng", "finance"})
	id, err := v.VerifyUser(context.Background(), identitytest.Sign(t, rsaKey, claims, false), now)
	if err != nil {
		t.Fatalf("VerifyUser: %v", err)
	}
	if id.Name != "alice" || id.Email != "alice@example.com" || strings.Join(id.Groups, ",") != "eng,finance" {
		t.Errorf("identity = %+v", id)
	}
	// A users-only issuer with a custom user claim.
	claims = identitytest.NewClaims(peopleIss, "u-123", aud, now).With("email", "bob@example.com")
	id, err = v.VerifyUser(context.Background(), identitytest.Sign(t, ecKey, claims, false), now)
	if err != nil || id.Source != "people" || id.Name != "bob@example.com" {
		t.Errorf("VerifyUser(people) = %+v, %v", id, err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	v := newVerifier(t)
	good := identitytest.NewClaims(corpIss, "billing-bot", aud, now)
	valid := identitytest.Sign(t, rsaKey, good, false)
	parts := strings.Split(valid, ".")
	tampered := identitytest.Raw(t, map[string]any{"alg": "RS256", "kid": "r1"}, good.With("sub", "admin"), nil)
	tampered = strings.Join([]string{parts[0], strings.Split(tampered, ".")[1], parts[2]}, ".")
	attackerKey := identitytest.ECDSA(t, "e1")
	hugeHeader := identitytest.Raw(t, map[string]any{"alg": "RS256", "kid": "r1", "x": strings.Repeat("a", 9000)}, good, []byte("sig"))

	tests := []struct {
		name   string
		token  string
		user   bool
		wantIn string
	}{
		{name: "empty", token: "", wantIn: "not a signed JWT"},
		{name: "garbage", token: "not.a.jwt", wantIn: "not a signed JWT"},
		{name: "alg none", token: identitytest.Raw(t, map[string]any{"alg": "none", "kid": "r1"}, good, nil), wantIn: "not a signed JWT"},
		{name: "HS256 keyed with the RSA public key", token: identitytest.HS256WithPublicKey(t, rsaKey, good), wantIn: "not a signed JWT"},
		{name: "expired", token: identitytest.Sign(t, rsaKey, good.With("exp", now.Add(-time.Minute).Unix()), false), wantIn: "expired"},
		{name: "no exp", token: identitytest.Sign(t, rsaKey, good.With("exp", nil), false), wantIn: "no expiry"},
		{name: "not yet valid", token: identitytest.Sign(t, rsaKey, good.With("nbf", now.Add(time.Hour).Unix()), false), wantIn: "not valid yet"},
		{name: "issued in the future", token: identitytest.Sign(t, rsaKey, good.With("iat", now.Add(time.Hour).Unix()), false), wantIn: "issued in the future"},
		{name: "wrong issuer", token: identitytest.Sign(t, rsaKey, good.With("iss", "https://evil.example"), false), wantIn: "issuer is not trusted"},
		{name: "wrong audience", token: identitytest.Sign(t, rsaKey, good.With("aud", "someone-else"), false), wantIn: "not meant for this gateway"},
		{name: "unknown kid", token: identitytest.Sign(t, identitytest.Key{KID: "r9", Alg: rsaKey.Alg, Private: rsaKey.Private}, good, false), wantIn: "signing key is not one of"},
		{name: "tampered payload", token: tampered, wantIn: "signature does not verify"},
		{name: "signed by another key with a trusted kid", token: identitytest.Sign(t, otherRSA, good, false), wantIn: "signature does not verify"},
		{name: "alg that does not fit the kid's key", token: identitytest.Sign(t, identitytest.Key{KID: "r1", Alg: attackerKey.Alg, Private: attackerKey.Private}, good, false), wantIn: "signing key is not one of"},
		{name: "key embedded in the header", token: embeddedJWK(t, attackerKey, good), wantIn: "signature does not verify"},
		{name: "no kid with several keys", token: identitytest.Sign(t, rsaKey, good, true), wantIn: "no key id"},
		{name: "larger than 8 KiB", token: hugeHeader, wantIn: "exceeds 8192 bytes"},
		{name: "agent token from a users-only issuer", token: identitytest.Sign(t, ecKey, good.With("iss", peopleIss), false), wantIn: "not trusted for agents"},
		{name: "algorithm outside the issuer's allowlist", user: true, token: identitytest.Sign(t, rsaKey, good.With("iss", peopleIss).With("email", "a@b"), false), wantIn: "algorithm is not accepted"},
		{name: "subject claim missing", user: true, token: identitytest.Sign(t, ecKey, good.With("iss", peopleIss), false), wantIn: `no "email" claim`},
		{name: "subject claim not a string", token: identitytest.Sign(t, rsaKey, good.With("sub", 42), false), wantIn: "registered claims"},
		{name: "agent claim missing", token: identitytest.Sign(t, rsaKey, good.With("sub", nil), false), wantIn: `no "sub" claim`},
		{name: "too many groups", user: true, token: identitytest.Sign(t, rsaKey, good.With("groups", make([]string, 65)), false), wantIn: `"groups" claim`},
		{name: "groups not strings", user: true, token: identitytest.Sign(t, rsaKey, good.With("groups", []int{1}), false), wantIn: `"groups" claim`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verify := v.VerifyAgent
			if tt.user {
				verify = v.VerifyUser
			}
			id, err := verify(context.Background(), tt.token, now)
			var ierr *identity.Error
			if !errors.As(err, &ierr) {
				t.Fatalf("verify = %+v, %v; want an *identity.Error", id, err)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), "go-jose") || strings.Contains(err.Error(), "billing-bot") {
				t.Errorf("error %q leaks internal detail or token contents", err)
			}
		})
	}
}

// embeddedJWK signs claims with k and embeds k's public key, with k's kid,
// in the header: a verifier that trusted the header's key would accept it.
func embeddedJWK(t *testing.T, k identitytest.Key, claims identitytest.Claims) string {
	t.Helper()
	jwk := &jose.JSONWebKey{Key: k.Private, KeyID: k.KID, Algorithm: string(k.Alg)}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jwk}, (&jose.SignerOptions{EmbedJWK: true}).WithHeader("kid", k.KID))
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return out
}

func TestLeeway(t *testing.T) {
	v := newVerifier(t)
	claims := identitytest.NewClaims(corpIss, "billing-bot", aud, now).
		With("exp", now.Add(-20*time.Second).Unix()).With("nbf", now.Add(20*time.Second).Unix())
	if _, err := v.VerifyAgent(context.Background(), identitytest.Sign(t, edKey, claims, false), now); err != nil {
		t.Errorf("a token 20s out is within the default 30s leeway: %v", err)
	}
}

// jwksServer serves a JWKS on 127.0.0.1 and counts requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	doc  []byte
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		_, _ = w.Write(s.doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(doc []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc = doc
}

func remoteVerifier(t *testing.T, url string, p egress.Policy) *identity.Verifier {
	t.Helper()
	v, err := identity.New([]*configv1.IdentitySource{source("remote", &configv1.JwtIssuer{
		Issuer: corpIss, JwksUrl: url, Audiences: []string{aud}, Use: configv1.JwtUse_JWT_USE_AGENTS,
		Leeway: durationpb.New(0),
	})}, identity.Options{Egress: p})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func TestJWKSURL(t *testing.T) {
	testKeys(t)
	srv := newJWKSServer(t, identitytest.JWKS(t, rsaKey))
	v := remoteVerifier(t, srv.URL, egress.Policy{})
	ctx := context.Background()
	claims := identitytest.NewClaims(corpIss, "billing-bot", aud, now)

	if _, err := v.VerifyAgent(ctx, identitytest.Sign(t, rsaKey, claims, false), now); err != nil {
		t.Fatalf("first token: %v", err)
	}
	if _, err := v.VerifyAgent(ctx, identitytest.Sign(t, rsaKey, claims, true), now); err != nil {
		t.Fatalf("a token without kid is fine when the issuer has one key: %v", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (cached)", got)
	}

	// The issuer rotates to the EC key; tokens naming it arrive at once.
	srv.serve(identitytest.JWKS(t, rsaKey, ecKey))
	rotated := identitytest.Sign(t, ecKey, claims, false)
	for i := range 5 {
		at := now.Add(time.Duration(i) * time.Second)
		if _, err := v.VerifyAgent(ctx, rotated, at); err == nil || !strings.Contains(err.Error(), "not one of its issuer's keys") {
			t.Fatalf("unknown kid %d inside the refresh window: err = %v", i, err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times within 30s of the last fetch, want 1", got)
	}
	// After the window one unknown kid refreshes the set, and then it is known.
	later := now.Add(identity.RefreshInterval + time.Second)
	if _, err := v.VerifyAgent(ctx, rotated, later); err != nil {
		t.Fatalf("rotated key after the window: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", got)
	}
	for range 5 {
		unknown := identitytest.Sign(t, identitytest.Key{KID: "nope", Alg: edKey.Alg, Private: edKey.Private}, claims, false)
		if _, err := v.VerifyAgent(ctx, unknown, later); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times after repeated unknown kids, want 2", got)
	}
}

func TestJWKSUnknownKIDFirst(t *testing.T) {
	testKeys(t)
	srv := newJWKSServer(t, identitytest.JWKS(t, rsaKey))
	v := remoteVerifier(t, srv.URL, egress.Policy{})
	unknown := identitytest.Sign(t, edKey, identitytest.NewClaims(corpIss, "x", aud, now), false)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := v.VerifyAgent(context.Background(), unknown, now); err == nil {
				t.Error("unknown kid accepted")
			}
		})
	}
	wg.Wait()
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", got)
	}
}

func TestJWKSFetchRefused(t *testing.T) {
	testKeys(t)
	big := newJWKSServer(t, []byte(`{"keys":[],"pad":"`+strings.Repeat("a", identity.MaxJWKSBytes)+`"}`))
	good := newJWKSServer(t, identitytest.JWKS(t, rsaKey))
	redirect := httptest.NewServer(http.RedirectHandler(good.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	denyLoopback := egress.Policy{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

	tests := []struct {
		name   string
		url    string
		policy egress.Policy
	}{
		{name: "larger than 64 KiB", url: big.URL},
		{name: "redirect", url: redirect.URL},
		{name: "status 404", url: notFound.URL},
		{name: "egress policy denies the address", url: good.URL, policy: denyLoopback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := remoteVerifier(t, tt.url, tt.policy)
			tok := identitytest.Sign(t, rsaKey, identitytest.NewClaims(corpIss, "x", aud, now), false)
			_, err := v.VerifyAgent(context.Background(), tok, now)
			if err == nil || err.Error() != "the issuer's signing keys are unavailable; retry later" {
				t.Fatalf("err = %v", err)
			}
			if errors.Unwrap(err) == nil {
				t.Error("the refusal keeps no cause for logs")
			}
		})
	}
	if got := good.hits.Load(); got != 0 {
		t.Errorf("the JWKS behind a redirect or a denied address was fetched %d times", got)
	}
}

func TestNewRefusesBadIssuers(t *testing.T) {
	testKeys(t)
	jwks := identitytest.JWKS(t, rsaKey)
	base := func() *configv1.JwtIssuer {
		return &configv1.JwtIssuer{Issuer: corpIss, Jwks: jwks, Audiences: []string{aud}, Use: configv1.JwtUse_JWT_USE_AGENTS}
	}
	tests := []struct {
		name   string
		mutate func(j *configv1.JwtIssuer)
		wantIn string
	}{
		{name: "alg none", mutate: func(j *configv1.JwtIssuer) { j.Algorithms = []string{"none"} }, wantIn: `"none" is not accepted`},
		{name: "HS256", mutate: func(j *configv1.JwtIssuer) { j.Algorithms = []string{"RS256", "HS256"} }, wantIn: `"HS256" is not accepted`},
		{name: "no audience", mutate: func(j *configv1.JwtIssuer) { j.Audiences = nil }, wantIn: "no audiences"},
		{name: "no issuer", mutate: func(j *configv1.JwtIssuer) { j.Issuer = "" }, wantIn: "issuer is empty"},
		{name: "both key sources", mutate: func(j *configv1.JwtIssuer) { j.JwksUrl = "https://idp.example/jwks" }, wantIn: "exactly one"},
		{name: "no key source", mutate: func(j *configv1.JwtIssuer) { j.Jwks = nil }, wantIn: "exactly one"},
		{name: "bad URL", mutate: func(j *configv1.JwtIssuer) { j.Jwks, j.JwksUrl = nil, "file:///etc/passwd" }, wantIn: "not an http(s) URL"},
		{name: "bad inline JWKS", mutate: func(j *configv1.JwtIssuer) { j.Jwks = []byte(`{"nokeys":1}`) }, wantIn: "jwks"},
		{name: "use unspecified", mutate: func(j *configv1.JwtIssuer) { j.Use = configv1.JwtUse_JWT_USE_UNSPECIFIED }, wantIn: "use is unspecified"},
		{name: "leeway too long", mutate: func(j *configv1.JwtIssuer) { j.Leeway = durationpb.New(time.Hour) }, wantIn: "leeway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := base()
			tt.mutate(j)
			_, err := identity.New([]*configv1.IdentitySource{source("corp", j)}, identity.Options{})
			if err == nil || !strings.Contains(err.Error(), `identity source "corp"`) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("New() error = %v, want one naming the source and containing %q", err, tt.wantIn)
			}
		})
	}
}

func TestInlineJWKSDropsSymmetricKeys(t *testing.T) {
	testKeys(t)
	// An "oct" key with the kid of the HMAC forgery must never be used.
	jwks := []byte(`{"keys":[{"kty":"oct","kid":"r1","k":"c2VjcmV0"}]}`)
	v, err := identity.New([]*configv1.IdentitySource{source("corp", &configv1.JwtIssuer{
		Issuer: corpIss, Jwks: jwks, Audiences: []string{aud}, Use: configv1.JwtUse_JWT_USE_AGENTS,
		Algorithms: []string{"RS256"},
	})}, identity.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tok := identitytest.Raw(t, map[string]any{"alg": "HS256", "kid": "r1"}, identitytest.NewClaims(corpIss, "x", aud, now), []byte("x"))
	if _, err := v.VerifyAgent(context.Background(), tok, now); err == nil {
		t.Fatal("HS256 token accepted")
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJh.eyJi.c2ln":         true,
		"pck_0123456789abcdef_x": false,
		"a.b":                    false,
		"a..c":                   false,
		"a.b.c.d":                false,
		"a.b+.c":                 false,
		"":                       false,
	} {
		if got := identity.LooksLikeJWT(s); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", s, got, want)
		}
	}
}
