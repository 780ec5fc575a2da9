// Package configtest builds data-plane snapshots for tests: a small,
// complete gateway configuration that tests change field by field.
package configtest

import (
	"crypto/sha256"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// API keys of the fixture's agents ("pck_<id>_<secret>").
const (
	// PayerKey belongs to agent "payer" of team "payments".
	PayerKey = "pck_0123456789abcdef_payer-secret"
	// MarketerKey belongs to agent "marketer" of team "marketing".
	MarketerKey = "pck_1111111111111111_marketer-secret"
	// ExpiredKey belongs to agent "payer" and expired at ExpiredAt.
	ExpiredKey = "pck_2222222222222222_expired-secret"
	// DisabledKey belongs to the disabled agent "retired" of team payments.
	DisabledKey = "pck_3333333333333333_retired-secret"
)

// Names in the fixture (see authztest, whose configuration this is).
const (
	Upstream      = authztest.Upstream
	BearerSecret  = "pay-token"
	BalanceAction = authztest.BalanceAction // read-only, no arguments
	PayAction     = authztest.PayAction     // mutating: amount (integer), to (string)
	PolicySet     = authztest.PolicySet
	PolicyFile    = authztest.PolicyFile
	Version       = authztest.Version
)

// Policies is the fixture's policy set: the payments team may call every
// tool, and nobody may pay 500 or more. The forbid is policy1.
const Policies = authztest.Policies

// PaySchema is the input schema of pay/pay.
const PaySchema = authztest.PaySchema

// VersionTime is the fixture's version time; ExpiredAt is when ExpiredKey
// stopped working.
var (
	VersionTime = authztest.VersionTime
	ExpiredAt   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Hash is the SHA-256 of a key's text, as credential.New stores it.
func Hash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// Snapshot returns a fresh fixture snapshot: authztest.Snapshot with what a
// data plane serves besides — upstream "pay" with a bearer secret, and the
// agents' API keys.
func Snapshot() *snapshotv1.Snapshot {
	return withCredentials(authztest.Snapshot())
}

// withCredentials adds the bearer secret of upstream "pay" and the API
// keys of the fixture's agents that s has.
func withCredentials(s *snapshotv1.Snapshot) *snapshotv1.Snapshot {
	s.Upstreams[0].Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{
		Bearer: &configv1.BearerCredential{Secret: BearerSecret},
	}}
	s.Secrets = []*snapshotv1.SecretValue{{Name: BearerSecret, Version: 1, Value: []byte("upstream-token")}}
	keys := map[string][]*configv1.ApiKey{
		authztest.Payer: {
			{Id: "0123456789abcdef", Sha256: Hash(PayerKey)},
			{Id: "2222222222222222", Sha256: Hash(ExpiredKey), ExpireTime: timestamppb.New(ExpiredAt)},
		},
		authztest.Marketer: {{Id: "1111111111111111", Sha256: Hash(MarketerKey)}},
		authztest.Retired:  {{Id: "3333333333333333", Sha256: Hash(DisabledKey)}},
	}
	for _, a := range s.Agents {
		a.ApiKeys = keys[a.GetMeta().GetName()]
	}
	return s
}

// Marshal serializes a snapshot as the control plane does.
func Marshal(t testing.TB, s *snapshotv1.Snapshot) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		t.Fatalf("marshal snapshot: %v", err)
	}
	return b
}

// Compile compiles s and fails the test if it is refused.
func Compile(t testing.TB, s *snapshotv1.Snapshot) *config.Compiled {
	t.Helper()
	c, err := config.Compile(Marshal(t, s))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

// JWT fixture values: the issuer and audience tokens for JWTSource carry.
const (
	JWTSource   = "corp-idp"
	JWTIssuer   = "https://idp.example"
	JWTAudience = "portcullis"
)

// JWTIssuerSource returns an identity source named name trusting issuer iss for
// use, with audience JWTAudience and either an inline JWKS or a JWKS URL.
func JWTIssuerSource(name, iss string, use configv1.JwtUse, jwks []byte, jwksURL string) *configv1.IdentitySource {
	return &configv1.IdentitySource{
		Meta: &configv1.ResourceMeta{Name: name},
		Kind: &configv1.IdentitySource_JwtIssuer{JwtIssuer: &configv1.JwtIssuer{
			Issuer: iss, Jwks: jwks, JwksUrl: jwksURL, Audiences: []string{JWTAudience}, Use: use,
		}},
	}
}

// BindJWT binds (source, subject) to the named agent of s.
func BindJWT(t testing.TB, s *snapshotv1.Snapshot, agent, source, subject string) {
	t.Helper()
	for _, a := range s.GetAgents() {
		if a.GetMeta().GetName() == agent {
			a.JwtSubjects = append(a.JwtSubjects, &configv1.JwtSubject{IdentitySource: source, Subject: subject})
			return
		}
	}
	t.Fatalf("no agent %q in the snapshot", agent)
}

// Scale fixture: see authztest.Scale.
const (
	ScaleTools   = authztest.ScaleTools
	ScaleForbids = authztest.ScaleForbids
	ScaleSchema  = authztest.ScaleSchema
)

// ScaleAgent is the agent that policy i of Scale permits.
func ScaleAgent(i int) string { return authztest.ScaleAgent(i) }

// ScaleAction is the tool policy i of Scale permits.
func ScaleAction(i int) string { return authztest.ScaleAction(i) }

// Scale is authztest.Scale(n) with the upstream's bearer secret, so a
// data plane compiles it.
func Scale(n int) *snapshotv1.Snapshot {
	return withCredentials(authztest.Scale(n))
}
