package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/time/rate"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Defaults and limits of an issuer.
const (
	defaultLeeway = 30 * time.Second
	maxLeeway     = 5 * time.Minute
	// RefreshInterval is the least time between two JWKS fetches of one
	// issuer.
	RefreshInterval = 30 * time.Second
	// MaxGroups bounds the groups of a user token.
	MaxGroups = 64
	// maxClaimBytes bounds a name, email or group.
	maxClaimBytes = 256
)

// issuer is one trusted JWT issuer and its keys.
type issuer struct {
	source     string
	iss        string
	audiences  []string
	algs       []jose.SignatureAlgorithm
	agentClaim string
	userClaim  string
	groupClaim string
	leeway     time.Duration
	agents     bool
	users      bool

	// jwksURL is "" for an inline key set.
	jwksURL string
	client  *http.Client
	// limiter allows one fetch per RefreshInterval.
	limiter *rate.Limiter
	// fetchMu serializes fetches, so concurrent callers with the same
	// unknown kid wait for one fetch instead of each spending the limiter.
	fetchMu sync.Mutex

	mu      sync.Mutex // guards keys and fetched
	keys    []jose.JSONWebKey
	fetched bool
}

// newIssuer checks a JwtIssuer as the control plane does (defence in
// depth: a snapshot is never trusted to have been checked) and builds it.
func newIssuer(name string, j *configv1.JwtIssuer, client *http.Client) (*issuer, error) {
	is := &issuer{
		source:     name,
		iss:        j.GetIssuer(),
		audiences:  slices.Clone(j.GetAudiences()),
		agentClaim: orDefault(j.GetAgentClaim(), "sub"),
		userClaim:  orDefault(j.GetUserClaim(), "sub"),
		groupClaim: orDefault(j.GetGroupsClaim(), "groups"),
		leeway:     defaultLeeway,
	}
	if is.iss == "" {
		return nil, errors.New("issuer is empty")
	}
	if len(is.audiences) == 0 {
		return nil, errors.New("no audiences")
	}
	switch j.GetUse() {
	case configv1.JwtUse_JWT_USE_AGENTS:
		is.agents = true
	case configv1.JwtUse_JWT_USE_USERS:
		is.users = true
	case configv1.JwtUse_JWT_USE_BOTH:
		is.agents, is.users = true, true
	default:
		return nil, errors.New("use is unspecified")
	}
	if l := j.GetLeeway(); l != nil {
		is.leeway = l.AsDuration()
		if is.leeway < 0 || is.leeway > maxLeeway {
			return nil, fmt.Errorf("leeway %s is not between 0 and %s", is.leeway, maxLeeway)
		}
	}
	for _, a := range j.GetAlgorithms() {
		alg, ok := supported[a]
		if !ok {
			return nil, fmt.Errorf("algorithm %q is not accepted (use RS*, PS*, ES* or EdDSA)", a)
		}
		if !slices.Contains(is.algs, alg) {
			is.algs = append(is.algs, alg)
		}
	}
	if len(is.algs) == 0 {
		is.algs = slices.Clone(defaultAlgorithms)
	}
	hasURL, hasInline := j.GetJwksUrl() != "", len(j.GetJwks()) > 0
	switch {
	case hasURL == hasInline:
		return nil, errors.New("give exactly one of jwks_url and jwks")
	case hasURL:
		u, err := url.Parse(j.GetJwksUrl())
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("jwks_url is not an http(s) URL")
		}
		is.jwksURL, is.client = u.String(), client
		is.limiter = rate.NewLimiter(rate.Every(RefreshInterval), 1)
	default:
		keys, err := parseJWKS(j.GetJwks())
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		is.keys, is.fetched = keys, true
	}
	return is, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lookup outcomes.
type lookup int

const (
	found lookup = iota
	unknownKID
	noKID
	notFetched
)

// lookup finds the key for kid that fits alg.
func (is *issuer) lookup(kid string, alg jose.SignatureAlgorithm) (jose.JSONWebKey, lookup) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if !is.fetched {
		return jose.JSONWebKey{}, notFetched
	}
	if kid == "" {
		// Without kid only a lone key is unambiguous.
		if len(is.keys) != 1 {
			return jose.JSONWebKey{}, noKID
		}
		return is.keys[0], found
	}
	for _, k := range is.keys {
		if k.KeyID == kid && fits(k, alg) {
			return k, found
		}
	}
	return jose.JSONWebKey{}, unknownKID
}

// key returns the key for kid and alg, fetching the JWKS when it was never
// fetched or does not know kid, at most once per RefreshInterval.
func (is *issuer) key(ctx context.Context, kid string, alg jose.SignatureAlgorithm, now time.Time) (jose.JSONWebKey, error) {
	k, st := is.lookup(kid, alg)
	switch {
	case st == found:
		return k, nil
	case st == noKID:
		return k, refused("the token has no key id (kid) and its issuer has several keys", nil)
	case is.jwksURL == "":
		return k, refused("the token's signing key is not one of its issuer's keys", nil)
	}
	is.fetchMu.Lock()
	defer is.fetchMu.Unlock()
	// Someone may have fetched while this caller waited.
	if k, st = is.lookup(kid, alg); st == found {
		return k, nil
	}
	if !is.limiter.AllowN(now, 1) {
		if st == notFetched {
			return k, refused("the issuer's signing keys are unavailable; retry later", nil)
		}
		return k, refused("the token's signing key is not one of its issuer's keys", nil)
	}
	// The one fetch this interval allows is not wasted when the caller
	// goes away; the client's timeout bounds it.
	keys, err := fetchJWKS(context.WithoutCancel(ctx), is.client, is.jwksURL)
	if err != nil {
		if st == notFetched {
			return k, refused("the issuer's signing keys are unavailable; retry later", err)
		}
		return k, refused("the token's signing key is not one of its issuer's keys", err)
	}
	is.mu.Lock()
	is.keys, is.fetched = keys, true
	is.mu.Unlock()
	if k, st = is.lookup(kid, alg); st != found {
		if st == noKID {
			return k, refused("the token has no key id (kid) and its issuer has several keys", nil)
		}
		return k, refused("the token's signing key is not one of its issuer's keys", nil)
	}
	return k, nil
}

// verify checks tok, whose claims claimed this issuer, completely.
func (is *issuer) verify(ctx context.Context, tok *jwt.JSONWebToken, now time.Time, forUsers bool) (Identity, error) {
	h := tok.Headers[0]
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if !slices.Contains(is.algs, alg) {
		return Identity{}, refused("the token's algorithm is not accepted for its issuer", nil)
	}
	key, err := is.key(ctx, h.KeyID, alg, now)
	if err != nil {
		return Identity{}, err
	}
	if !fits(key, alg) {
		return Identity{}, refused("the token's algorithm does not match its signing key", nil)
	}
	var std jwt.Claims
	var raw map[string]json.RawMessage
	if err := tok.Claims(key.Key, &raw); err != nil {
		return Identity{}, refused("the token's signature does not verify", err)
	}
	// The payload is verified now; decoding it again only types it.
	if err := tok.UnsafeClaimsWithoutVerification(&std); err != nil {
		return Identity{}, refused("the token's registered claims (iss, sub, aud, exp, nbf, iat) are malformed", err)
	}
	if err := is.checkClaims(std, now); err != nil {
		return Identity{}, err
	}
	claim := is.agentClaim
	if forUsers {
		claim = is.userClaim
	}
	name, ok := stringClaim(raw, claim)
	if !ok || name == "" {
		return Identity{}, refused(fmt.Sprintf("the token has no %q claim naming its subject (a non-empty string of at most %d bytes)", claim, maxClaimBytes), nil)
	}
	id := Identity{Source: is.source, Issuer: is.iss, Name: name}
	if !forUsers {
		return id, nil
	}
	if email, ok := stringClaim(raw, "email"); ok && email != "" {
		id.Email = email
	}
	if id.Groups, err = is.groups(raw); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// checkClaims checks iss, aud, exp (required), nbf and iat.
func (is *issuer) checkClaims(c jwt.Claims, now time.Time) error {
	if c.Issuer != is.iss {
		return refused("the token's issuer is not trusted", nil)
	}
	if !slices.ContainsFunc(is.audiences, c.Audience.Contains) {
		return refused("the token is not meant for this gateway (aud)", nil)
	}
	if c.Expiry == nil {
		return refused("the token has no expiry (exp)", nil)
	}
	if !now.Before(c.Expiry.Time().Add(is.leeway)) {
		return refused("the token has expired", nil)
	}
	if c.NotBefore != nil && now.Add(is.leeway).Before(c.NotBefore.Time()) {
		return refused("the token is not valid yet (nbf)", nil)
	}
	if c.IssuedAt != nil && now.Add(is.leeway).Before(c.IssuedAt.Time()) {
		return refused("the token was issued in the future (iat)", nil)
	}
	return nil
}

// groups reads the groups claim: absent means none; otherwise an array of
// at most MaxGroups non-empty strings. A malformed claim refuses the token
// rather than dropping groups, which could silently skip a forbid.
func (is *issuer) groups(raw map[string]json.RawMessage) ([]string, error) {
	v, ok := raw[is.groupClaim]
	if !ok || string(v) == "null" {
		return nil, nil
	}
	bad := refused(fmt.Sprintf("the token's %q claim must be an array of at most %d non-empty strings of at most %d bytes", is.groupClaim, MaxGroups, maxClaimBytes), nil)
	var groups []string
	if err := json.Unmarshal(v, &groups); err != nil || len(groups) > MaxGroups {
		return nil, bad
	}
	for _, g := range groups {
		if g == "" || len(g) > maxClaimBytes {
			return nil, bad
		}
	}
	slices.Sort(groups)
	return slices.Compact(groups), nil
}

// stringClaim reads a string claim of at most maxClaimBytes.
func stringClaim(raw map[string]json.RawMessage, name string) (string, bool) {
	v, ok := raw[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil || len(s) > maxClaimBytes {
		return "", false
	}
	return s, true
}
