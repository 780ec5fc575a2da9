package identity_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/identity"
	"github.com/portcullis-gw/portcullis/internal/dataplane/identity/identitytest"
)

// FuzzVerify feeds arbitrary bearer strings to the verifier: it must never
// panic, and must refuse everything with an *identity.Error, since no
// fuzzer produces a valid signature.
func FuzzVerify(f *testing.F) {
	v := newVerifier(f)
	good := identitytest.NewClaims(corpIss, "billing-bot", aud, now)
	f.Add("")
	f.Add("a.b.c")
	f.Add(identitytest.Raw(f, map[string]any{"alg": "none"}, good, nil))
	f.Add(identitytest.HS256WithPublicKey(f, rsaKey, good))
	f.Add(identitytest.Raw(f, map[string]any{"alg": "RS256", "kid": "r1", "crit": []string{"exp"}}, good, []byte("x")))
	f.Fuzz(func(t *testing.T, token string) {
		for _, verify := range []func(context.Context, string, time.Time) (identity.Identity, error){v.VerifyAgent, v.VerifyUser} {
			id, err := verify(context.Background(), token, now)
			var ierr *identity.Error
			if !errors.As(err, &ierr) {
				t.Fatalf("verify(%q) = %+v, %v; want a refusal", token, id, err)
			}
		}
	})
}
