package stages

import (
	"context"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/identity"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
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
	tokens, _ := c.Config.(pipeline.TokenAuthenticator)
	switch {
	case c.Credential == "" && len(c.PeerCertificates) > 0:
		certs, ok := c.Config.(pipeline.CertAuthenticator)
		if !ok {
			return nil, unauthenticated()
		}
		agent, err := certs.AgentByCert(c.PeerCertificates, now)
		if err != nil || agent == nil || agent.GetDisabled() {
			return nil, tokenRefused("the client certificate was refused", err)
		}
		c.Agent = agent
	case c.Credential == "":
		return nil, unauthenticated()
	case !strings.HasPrefix(c.Credential, "pck_") && identity.LooksLikeJWT(c.Credential):
		if tokens == nil {
			return nil, unauthenticated()
		}
		agent, err := tokens.AgentByJWT(ctx, c.Credential, now)
		if err != nil || agent == nil || agent.GetDisabled() {
			return nil, tokenRefused("the agent token was refused", err)
		}
		c.Agent = agent
	default:
		agent, ok := c.Config.AgentByAPIKey(c.Credential, now)
		if !ok || agent == nil || agent.GetDisabled() {
			return nil, unauthenticated()
		}
		c.Agent = agent
	}
	if c.UserToken != "" {
		if tokens == nil {
			c.Agent = nil
			return nil, tokenRefused(msgUserTokenRefused, nil)
		}
		user, err := tokens.UserByJWT(ctx, c.UserToken, now)
		if err != nil || user == nil {
			c.Agent = nil
			return nil, tokenRefused(msgUserTokenRefused, err)
		}
		c.User = user
	}
	return next(ctx, c)
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
