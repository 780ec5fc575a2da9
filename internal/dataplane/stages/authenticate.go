package stages

import (
	"context"
	"crypto/x509"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/identity"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// AnonymousRecorder counts a refusal of a caller no agent was identified
// for. It must be safe for concurrent use; package refusals implements it.
type AnonymousRecorder interface {
	Refused(src netip.Addr, reason string)
}

// Authenticate resolves the caller's credential to an agent and sets
// call.Agent, unless the protocol adapter already did (an adapter that
// needs the agent before it can tell the operation, e.g. to check a
// session, resolves it with ResolveAgent: either way, once per call).
//
// The credential is an API key ("pck_…") or a JWT from an identity source
// trusted for agents, bound to the agent by its jwt_subjects. Without a
// bearer credential, a client certificate of the connection
// (call.PeerCertificates, mTLS) is the credential. When a caller presents
// both, the bearer credential decides and the certificate is ignored: a
// refused bearer is refused even with a good certificate, so an agent can
// never be switched by adding or removing a credential the caller did not
// mean. An unknown, malformed or expired credential, or a disabled agent,
// is refused as unauthenticated, and counted by Anonymous (with the
// source address) instead of being audited one by one.
type Authenticate struct {
	Anonymous AnonymousRecorder
}

var _ pipeline.Stage = Authenticate{}

// Name implements pipeline.Stage.
func (Authenticate) Name() string { return "authenticate" }

// Handle implements pipeline.Stage.
func (a Authenticate) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Agent != nil {
		return next(ctx, c)
	}
	refuse := func(r *pipeline.Refusal) (*pipeline.Result, error) {
		if a.Anonymous != nil {
			a.Anonymous.Refused(c.SourceIP, string(r.Reason))
		}
		return nil, r
	}
	if c.Config == nil {
		// Without configuration no key can be checked; saying
		// "unauthenticated" would send the caller after the wrong problem.
		return refuse(pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig))
	}
	agent, refusal := ResolveAgent(ctx, c.Config, c.Credential, c.PeerCertificates, startOf(c))
	if refusal != nil {
		return refuse(refusal)
	}
	c.Agent = agent
	return next(ctx, c)
}

// ResolveAgent maps a caller's credential to an enabled agent, by the
// rules documented on Authenticate: a bearer credential (API key or agent
// JWT) when there is one, else the connection's client certificate. It is
// the one place those rules live.
func ResolveAgent(ctx context.Context, cfg pipeline.Config, credential string, certs []*x509.Certificate, now time.Time) (*configv1.Agent, *pipeline.Refusal) {
	switch {
	case credential == "" && len(certs) > 0:
		agent, err := cfg.AgentByCert(certs, now)
		if err != nil || agent == nil || agent.GetDisabled() {
			return nil, tokenRefused("the client certificate was refused", err)
		}
		return agent, nil
	case credential == "":
		return nil, unauthenticated()
	case !strings.HasPrefix(credential, "pck_") && identity.LooksLikeJWT(credential):
		agent, err := cfg.AgentByJWT(ctx, credential, now)
		if err != nil || agent == nil || agent.GetDisabled() {
			return nil, tokenRefused("the agent token was refused", err)
		}
		return agent, nil
	default:
		agent, ok := cfg.AgentByAPIKey(credential, now)
		if !ok || agent == nil || agent.GetDisabled() {
			return nil, unauthenticated()
		}
		return agent, nil
	}
}

// Identify verifies the on-behalf-of user token, if the call carries one,
// against the identity sources trusted for users, and sets call.User. A
// token that does not verify is refused as unauthenticated: a call is
// never silently downgraded to one without its user. It runs after Audit,
// so such a refusal of an identified agent is recorded.
type Identify struct{}

var _ pipeline.Stage = Identify{}

// Name implements pipeline.Stage.
func (Identify) Name() string { return "identify" }

// Handle implements pipeline.Stage.
func (Identify) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.UserToken != "" && c.User == nil {
		user, refusal := ResolveUser(ctx, c.Config, c.UserToken, startOf(c))
		if refusal != nil {
			return nil, refusal
		}
		c.User = user
	}
	return next(ctx, c)
}

// ResolveUser verifies an on-behalf-of user token against the identity
// sources trusted for users; like ResolveAgent, the one place the rule
// lives.
func ResolveUser(ctx context.Context, cfg pipeline.Config, token string, now time.Time) (*pipeline.User, *pipeline.Refusal) {
	if cfg == nil {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	}
	user, err := cfg.UserByJWT(ctx, token, now)
	if err != nil || user == nil {
		return nil, tokenRefused(msgUserTokenRefused, err)
	}
	return user, nil
}

const msgUserTokenRefused = "the user token (Portcullis-User-Token) was refused"

func unauthenticated() *pipeline.Refusal {
	return pipeline.Refuse(pipeline.ReasonUnauthenticated, "a valid API key is required: send Authorization: Bearer pck_…")
}

// tokenRefused refuses a JWT or certificate. Config promises messages safe
// for the caller; they are still bounded here.
func tokenRefused(what string, err error) *pipeline.Refusal {
	if err == nil {
		return pipeline.Refuse(pipeline.ReasonUnauthenticated, "%s", what)
	}
	return pipeline.Refuse(pipeline.ReasonUnauthenticated, "%s: %s", what, truncate(err.Error(), maxEcho))
}
