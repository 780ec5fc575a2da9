// Package tokenauth verifies the bearer tokens presented to a control-plane
// node (admin API and config sync alike) against the replicated token
// records: shape, SHA-256 in constant time, expiry.
package tokenauth

import (
	"errors"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/credential"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// ErrRefused is returned for every bad token, whatever the reason, so that
// callers learn nothing about which tokens exist.
var ErrRefused = errors.New("the token was refused: it is missing, malformed, unknown, revoked or expired")

// ID extracts the token id from an Authorization header value, without
// verifying anything.
func ID(authorization string) (text, id string, ok bool) {
	text, found := strings.CutPrefix(authorization, "Bearer ")
	if !found {
		return "", "", false
	}
	text = strings.TrimSpace(text)
	id, ok = credential.Parse(credential.AdminToken, text)
	return text, id, ok
}

// Verify checks the token text against st and returns its record.
func Verify(st *state.State, text, id string, now time.Time) (*configv1.AdminToken, error) {
	r, ok := st.Get(resource.AdminToken, id)
	if !ok || !credential.Verify(text, r.GetAdminToken().GetSha256()) {
		return nil, ErrRefused
	}
	tok := r.GetAdminToken()
	if exp := tok.GetExpireTime(); exp != nil && !now.Before(exp.AsTime()) {
		return nil, ErrRefused
	}
	return tok, nil
}

// Valid reports whether the token id still exists and has not expired (for
// long-lived streams that re-check on every state change).
func Valid(st *state.State, id string, now time.Time) bool {
	r, ok := st.Get(resource.AdminToken, id)
	if !ok {
		return false
	}
	exp := r.GetAdminToken().GetExpireTime()
	return exp == nil || now.Before(exp.AsTime())
}
