package config

import (
	"context"
	"errors"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/identity"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Option changes how Compile builds a Compiled.
type Option func(*options)

type options struct {
	// cacheSize bounds the policy engine's decision cache; 0 turns it off.
	cacheSize int
	// prev, when set, is the compiled version whose unchanged parts are
	// reused (see Reusing).
	prev *Compiled
}

// jwtSubject is an (identity source, subject) binding.
type jwtSubject struct {
	source, subject string
}

// errNoAgent refuses a verified token whose subject no enabled agent holds.
// The message does not echo the subject.
var errNoAgent = errors.New("the token is valid but its subject is not bound to an enabled agent")

// AgentByJWT verifies a token against the identity sources trusted for
// agents and returns the agent whose jwt_subjects binds (source, subject).
// Disabled agents are refused. The error's message is safe for the caller.
func (c *Compiled) AgentByJWT(ctx context.Context, token string, now time.Time) (*configv1.Agent, error) {
	id, err := c.verifier.VerifyAgent(ctx, token, now)
	if err != nil {
		return nil, err
	}
	a := c.jwtAgents[jwtSubject{source: id.Source, subject: id.Name}]
	if a == nil || a.GetDisabled() {
		return nil, errNoAgent
	}
	return a, nil
}

// UserByJWT verifies an on-behalf-of user token against the identity
// sources trusted for users. The error's message is safe for the caller.
func (c *Compiled) UserByJWT(ctx context.Context, token string, now time.Time) (*pipeline.User, error) {
	id, err := c.verifier.VerifyUser(ctx, token, now)
	if err != nil {
		return nil, err
	}
	return &pipeline.User{Source: id.Source, Issuer: id.Issuer, Name: id.Name, Email: id.Email, Groups: id.Groups}, nil
}

// indexIdentity builds the JWT verifier and indexes agents' JWT subjects.
// A binding is trusted only as the snapshot states it: one naming a source
// that is not a JWT issuer of the snapshot can never match (the control
// plane refuses such bindings anyway), and a (source, subject) pair bound to
// two agents is ambiguous, so it authenticates neither (nil in the index)
// rather than refusing the whole snapshot.
func (b *builder) indexIdentity() {
	v, err := identity.New(b.snap.GetIdentitySources(), identity.Options{Egress: b.c.egress})
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				b.problems.add("%v", e)
			}
		} else {
			b.problems.add("%v", err)
		}
	}
	b.c.verifier = v
	for _, a := range b.snap.GetAgents() {
		for _, js := range a.GetJwtSubjects() {
			key := jwtSubject{source: js.GetIdentitySource(), subject: js.GetSubject()}
			if prev, dup := b.c.jwtAgents[key]; dup && prev != a {
				b.c.jwtAgents[key] = nil
				continue
			}
			b.c.jwtAgents[key] = a
		}
	}
}
