// Package identitytest makes signing keys, key sets and tokens for tests of
// JWT verification, including the malformed and forged tokens an attacker
// would send.
package identitytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key is a signing key with its key id and algorithm.
type Key struct {
	KID     string
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
}

// RSA makes an RSA 2048 key for RS256.
func RSA(t testing.TB, kid string) Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	return Key{KID: kid, Alg: jose.RS256, Private: k}
}

// ECDSA makes a P-256 key for ES256.
func ECDSA(t testing.TB, kid string) Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate ECDSA key: %v", err)
	}
	return Key{KID: kid, Alg: jose.ES256, Private: k}
}

// Ed25519 makes an Ed25519 key for EdDSA.
func Ed25519(t testing.TB, kid string) Key {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate Ed25519 key: %v", err)
	}
	return Key{KID: kid, Alg: jose.EdDSA, Private: k}
}

// JWKS is the public key set of keys.
func JWKS(t testing.TB, keys ...Key) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.KID, Algorithm: string(k.Alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatalf("marshal JWKS: %v", err)
	}
	return b
}

// Claims are a token's claims, marshalled as JSON.
type Claims map[string]any

// NewClaims are valid claims at now: iss, sub, aud, iat now, exp in 5m.
func NewClaims(iss, sub, aud string, now time.Time) Claims {
	return Claims{"iss": iss, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
}

// With returns a copy of c with name set to v (deleted when v is nil).
func (c Claims) With(name string, v any) Claims {
	out := Claims{}
	for k, x := range c {
		out[k] = x
	}
	if v == nil {
		delete(out, name)
	} else {
		out[name] = v
	}
	return out
}

// Sign signs claims with k, naming k.KID in the header unless omitKID.
func Sign(t testing.TB, k Key, claims Claims, omitKID bool) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if !omitKID {
		opts = opts.WithHeader(jose.HeaderKey("kid"), k.KID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Private}, opts)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return s
}

// Raw assembles a compact token from a header, claims and signature as
// given, for tokens no honest signer makes.
func Raw(t testing.TB, header map[string]any, claims Claims, sig []byte) string {
	t.Helper()
	return enc(t, header) + "." + enc(t, claims) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// HS256WithPublicKey is the classic key-confusion forgery: an HS256 token
// whose HMAC secret is the DER of k's public key, naming k's kid.
func HS256WithPublicKey(t testing.TB, k Key, claims Claims) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Private.Public())
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	signingInput := enc(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": k.KID}) + "." + enc(t, claims)
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func enc(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
