package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"golang.org/x/time/rate"
)

// ErrCannotVerify: the token is unknown to this node and the node cannot
// catch up with the cluster right now to look again, so it cannot tell.
var ErrCannotVerify = errors.New("this node cannot verify the token right now (it is catching up with the cluster); retry, or use another node")

// Token is a verified bearer token.
type Token struct {
	ID   string
	Role configv1.Role
	// Dataplane is the data plane a dataplane-role token belongs to.
	Dataplane string
}

// Authenticator resolves the Authorization header of a request to a
// verified token, from headers alone: it is the one place the control plane
// decides who a caller is, for the admin API, the audit service and config
// sync alike. It is safe for concurrent use.
type Authenticator struct {
	store store.Store
	now   func() time.Time
	// recheck bounds how often an unknown token triggers a linearizable
	// re-read (a Raft barrier, which writes the log): unauthenticated
	// callers must not be able to make the cluster write at will.
	recheck *rate.Limiter
}

// NewAuthenticator returns an Authenticator reading tokens from st. now is
// the clock (nil: time.Now).
func NewAuthenticator(st store.Store, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	// Up to 20 unknown-token re-checks a second for the whole node; beyond
	// that an unknown token is refused from local state alone.
	return &Authenticator{store: st, now: now, recheck: rate.NewLimiter(20, 20)}
}

// Authenticate verifies the bearer token in authorization. It returns
// ErrRefused for every bad token (the Token then carries the presented id
// when the header held a well-formed token, for logs), ErrCannotVerify when
// this node cannot tell yet, or a store error (wrapped; not for clients).
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (Token, error) {
	text, id, ok := ID(authorization)
	if !ok {
		return Token{}, ErrRefused
	}
	st, err := a.store.State(ctx, false)
	if err != nil {
		return Token{ID: id}, fmt.Errorf("read token records: %w", err)
	}
	tok, err := Verify(st, text, id, a.now())
	if err != nil {
		// This node may not have seen the token yet (created a moment ago
		// through another node, or this node restarted and is replaying its
		// log): look again after catching up with the leader. If it cannot
		// catch up now, it cannot tell, and says so instead of refusing.
		if !a.recheck.Allow() {
			return Token{ID: id}, ErrRefused
		}
		fresh, ferr := a.store.State(ctx, true)
		if ferr != nil {
			return Token{ID: id}, fmt.Errorf("%w: %w", ErrCannotVerify, ferr)
		}
		if tok, err = Verify(fresh, text, id, a.now()); err != nil {
			return Token{ID: id}, err
		}
	}
	return Token{ID: id, Role: tok.GetRole(), Dataplane: tok.GetDataplane()}, nil
}

// Allows reports whether a token of role have may call a procedure needing
// role need. Admin ⊃ operator ⊃ auditor; dataplane stands apart; an
// unspecified need allows no one.
func Allows(have, need configv1.Role) bool {
	if have == configv1.Role_ROLE_DATAPLANE || need == configv1.Role_ROLE_DATAPLANE {
		return have == need
	}
	return have >= need && need != configv1.Role_ROLE_UNSPECIFIED
}

// RoleName is the lower-case name users type ("operator").
func RoleName(r configv1.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

type tokenKey struct{}

// NewContext returns ctx carrying the verified token tok.
func NewContext(ctx context.Context, tok Token) context.Context {
	return context.WithValue(ctx, tokenKey{}, tok)
}

// FromContext returns the verified token NewContext stored, if any.
func FromContext(ctx context.Context) (Token, bool) {
	tok, ok := ctx.Value(tokenKey{}).(Token)
	return tok, ok
}
