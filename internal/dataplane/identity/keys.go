package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Limits on key sets.
const (
	// MaxJWKSBytes bounds a fetched JWKS document.
	MaxJWKSBytes = 64 << 10
	// maxKeys bounds the keys kept from one JWKS.
	maxKeys = 64
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
)

// parseJWKS reads a JWKS document and keeps the keys usable for verifying
// signatures: RSA (at least 2048 bits), ECDSA on P-256/P-384/P-521 and
// Ed25519 public keys (a private key contributes its public half), not
// marked "use": "enc". Symmetric keys and keys of unknown types are
// skipped: an HMAC key must never verify anything here. A document that is
// not a JWKS is an error; a JWKS without a usable key is not.
func parseJWKS(doc []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`not a JSON Web Key Set: no "keys" array`)
	}
	var out []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // unsupported key type or parameters
		}
		if k.Use == "enc" {
			continue
		}
		pub := k.Public()
		if !pub.Valid() || !asymmetric(pub.Key) {
			continue
		}
		out = append(out, pub)
		if len(out) == maxKeys {
			break
		}
	}
	return out, nil
}

func asymmetric(key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return k.Curve == elliptic.P256() || k.Curve == elliptic.P384() || k.Curve == elliptic.P521()
	case ed25519.PublicKey:
		return len(k) == ed25519.PublicKeySize
	}
	return false
}

// fits reports whether k may verify a signature made with alg: the key's
// type (and curve) must be the algorithm's, and a key that names its
// algorithm must name this one.
func fits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		_, ok := k.Key.(*rsa.PublicKey)
		return ok
	case jose.ES256:
		return onCurve(k.Key, elliptic.P256())
	case jose.ES384:
		return onCurve(k.Key, elliptic.P384())
	case jose.ES512:
		return onCurve(k.Key, elliptic.P521())
	case jose.EdDSA:
		_, ok := k.Key.(ed25519.PublicKey)
		return ok
	}
	return false
}

func onCurve(key any, c elliptic.Curve) bool {
	k, ok := key.(*ecdsa.PublicKey)
	return ok && k.Curve == c
}

// supported lists the signature algorithms an issuer may allow. "none" and
// the HMAC algorithms are deliberately absent.
var supported = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"EdDSA": jose.EdDSA,
}

// defaultAlgorithms apply when an issuer lists none.
var defaultAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}
