package stages

import (
	"context"
	"crypto/x509"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/identity"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Authenticate resolves the caller's credential to an agent and sets
// call.Agent, then verifies the on-behalf-of user token, if any, and sets
// call.User. Everything is judged at the call's start.
//
// The credential is an API key ("pck_…") or a JWT from an identity source
// trusted for agents, bound to the agent by its jwt_subjects; JWTs are
// accepted only when the Config implements pipeline.TokenAuthenticator.
// Without a bearer credential, a client certificate of the connection
// (call.PeerCertificates, mTLS) is the credential, accepted only when the
// Config implements pipeline.CertAuthenticator. When a caller presents both,
// the bearer credential decides and the certificate is ignored: a refused
// bearer is refused even with a good certificate, so an agent can never be
// switched by adding or removing a credential the caller did not mean. An
// unknown, malformed or expired credential, or a disabled agent, is refused
// as unauthenticated, and so is a user token that does not verify against a
// source trusted for users: a call is never silently downgraded to one
// without its user.
type Authenticate struct{}

var _ pipeline.Stage = Authenticate{}

// Name implements pipeline.Stage.
func (Authenticate) Name() string { return "authenticate" }

// Handle implements pipeline.Stage.
func (Authenticate) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Config == nil {
		// Without configuration no key can be checked; saying
		// "unauthenticated" would send the caller after the wrong problem.
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, msgNoConfig)
	}
	now := c.Start
	if now.IsZero() {
		now = time.Now()
	}
	agent, refusal := ResolveAgent(ctx, c.Config, c.Credential, c.PeerCertificates, now)
	if refusal != nil {
		return nil, refusal
	}
	c.Agent = agent
	if c.UserToken != "" {
		user, refusal := ResolveUser(ctx, c.Config, c.UserToken, now)
		if refusal != nil {
			c.Agent = nil
			return nil, refusal
		}
		c.User = user
	}
	return next(ctx, c)
}

// ResolveAgent maps a caller's credential to an enabled agent, by the
// rules documented on Authenticate: a bearer credential (API key or agent
// JWT) when there is one, else the connection's client certificate. It is
// the one place those rules live; protocol adapters that must identify a
// caller outside the pipeline (MCP's initialize, tools/list) call it too.
func ResolveAgent(ctx context.Context, cfg pipeline.Config, credential string, certs []*x509.Certificate, now time.Time) (*configv1.Agent, *pipeline.Refusal) {
	switch {
	case credential == "" && len(certs) > 0:
		ca, ok := cfg.(pipeline.CertAuthenticator)
		if !ok {
			return nil, unauthenticated()
		}
		agent, err := ca.AgentByCert(certs, now)
		if err != nil || agent == nil || agent.GetDisabled() {
			return nil, tokenRefused("the client certificate was refused", err)
		}
		return agent, nil
	case credential == "":
		return nil, unauthenticated()
	case !strings.HasPrefix(credential, "pck_") && identity.LooksLikeJWT(credential):
		tokens, ok := cfg.(pipeline.TokenAuthenticator)
		if !ok {
			return nil, unauthenticated()
		}
		agent, err := tokens.AgentByJWT(ctx, credential, now)
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

// ResolveUser verifies an on-behalf-of user token against the identity
// sources trusted for users; like ResolveAgent, the one place the rule
// lives.
func ResolveUser(ctx context.Context, cfg pipeline.Config, token string, now time.Time) (*pipeline.User, *pipeline.Refusal) {
	tokens, ok := cfg.(pipeline.TokenAuthenticator)
	if !ok {
		return nil, tokenRefused(msgUserTokenRefused, nil)
	}
	user, err := tokens.UserByJWT(ctx, token, now)
	if err != nil || user == nil {
		return nil, tokenRefused(msgUserTokenRefused, err)
	}
	return user, nil
}

const msgUserTokenRefused = "the user token (Portcullis-User-Token) was refused"

func unauthenticated() *pipeline.Refusal {
	return pipeline.Refuse(pipeline.ReasonUnauthenticated, "a valid API key is required: send Authorization: Bearer pck_…")
}

// tokenRefused refuses a JWT. TokenAuthenticator promises messages safe for
// the caller; they are still bounded here.
func tokenRefused(what string, err error) *pipeline.Refusal {
	if err == nil {
		return pipeline.Refuse(pipeline.ReasonUnauthenticated, "%s", what)
	}
	return pipeline.Refuse(pipeline.ReasonUnauthenticated, "%s: %s", what, truncate(err.Error(), maxEcho))
}
