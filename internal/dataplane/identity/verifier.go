package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// MaxTokenBytes bounds a token; anything larger is refused unparsed.
const MaxTokenBytes = 8 << 10

// Identity is what a verified token vouches for.
type Identity struct {
	// Source is the name of the IdentitySource that trusted the token.
	Source string
	// Issuer is the token's `iss`.
	Issuer string
	// Name is the value of the issuer's agent claim (VerifyAgent) or user
	// claim (VerifyUser).
	Name string
	// Email is the user's `email` claim, "" when absent (users only).
	Email string
	// Groups are the user's groups, sorted and deduplicated (users only).
	Groups []string
}

// Options configure a Verifier.
type Options struct {
	// Egress is the policy JWKS fetches are dialed under. The zero value is
	// the default policy.
	Egress egress.Policy
}

// Verifier verifies tokens against a snapshot's JWT issuers. It is safe for
// concurrent use; keys fetched from a JWKS URL are cached for its lifetime.
type Verifier struct {
	// byIssuer maps `iss` to the issuers claiming it, in source-name order.
	byIssuer map[string][]*issuer
	// algs is the union of the issuers' algorithms: what the parser accepts.
	algs []jose.SignatureAlgorithm
}

// New builds a Verifier from a snapshot's identity sources; sources that are
// not JWT issuers are ignored. Every source that is not a valid JWT issuer
// is reported in the returned error (an errors.Join of one error per source,
// each naming it); no Verifier is returned then.
func New(sources []*configv1.IdentitySource, opts Options) (*Verifier, error) {
	v := &Verifier{byIssuer: map[string][]*issuer{}}
	client := newClient(opts.Egress)
	seen := map[string]bool{}
	var errs []error
	for _, s := range sources {
		j := s.GetJwtIssuer()
		if j == nil {
			continue
		}
		name := s.GetMeta().GetName()
		if name == "" || seen[name] {
			errs = append(errs, fmt.Errorf("identity source %q: the name is empty or used twice", name))
			continue
		}
		seen[name] = true
		is, err := newIssuer(name, j, client)
		if err != nil {
			errs = append(errs, fmt.Errorf("identity source %q: %w", name, err))
			continue
		}
		v.byIssuer[is.iss] = append(v.byIssuer[is.iss], is)
		for _, a := range is.algs {
			if !slices.Contains(v.algs, a) {
				v.algs = append(v.algs, a)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, list := range v.byIssuer {
		slices.SortFunc(list, func(a, b *issuer) int { return strings.Compare(a.source, b.source) })
	}
	return v, nil
}

// LooksLikeJWT reports whether s has the shape of a compact JWS: three
// non-empty base64url segments separated by dots. It says nothing about
// validity; it only tells a token from an API key or garbage.
func LooksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for _, c := range []byte(p) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

// VerifyAgent verifies a token from an issuer trusted for agents and
// returns the identity its agent claim names. A refusal is an [*Error].
func (v *Verifier) VerifyAgent(ctx context.Context, token string, now time.Time) (Identity, error) {
	return v.verify(ctx, token, now, false)
}

// VerifyUser verifies a token from an issuer trusted for users and returns
// the user its user claim names, with email and groups. A refusal is an
// [*Error].
func (v *Verifier) VerifyUser(ctx context.Context, token string, now time.Time) (Identity, error) {
	return v.verify(ctx, token, now, true)
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time, forUsers bool) (Identity, error) {
	if len(token) > MaxTokenBytes {
		return Identity{}, refused(fmt.Sprintf("the token exceeds %d bytes", MaxTokenBytes), nil)
	}
	if v == nil || len(v.algs) == 0 {
		return Identity{}, refused("no JWT issuer is trusted", nil)
	}
	tok, err := jwt.ParseSigned(token, v.algs)
	if err != nil {
		return Identity{}, refused("the token is not a signed JWT with an accepted algorithm", err)
	}
	if len(tok.Headers) != 1 {
		return Identity{}, refused("the token is not a compact JWT", nil)
	}
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return Identity{}, refused("the token's claims do not decode", err)
	}
	var last error = refused("the token's issuer is not trusted for "+whom(forUsers), nil)
	for _, is := range v.byIssuer[unverified.Issuer] {
		if forUsers && !is.users || !forUsers && !is.agents {
			continue
		}
		id, err := is.verify(ctx, tok, now, forUsers)
		if err == nil {
			return id, nil
		}
		last = err
	}
	return Identity{}, last
}

func whom(forUsers bool) string {
	if forUsers {
		return "users"
	}
	return "agents"
}
