package webui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The session cookie is stateless: it names the admin token that signed in
// and when the session ends, under a MAC keyed from the cluster's
// key-encryption key, so any control-plane node accepts it and none stores
// it. It never carries the token itself. Every request re-checks the named
// token against the replicated token records (revoked or expired: the
// session is over), and takes the role from the record, never from the
// cookie.
//
//	cookie = base64url(payload) "." base64url(HMAC-SHA256(macKey, payload))
//	payload = "v1" "|" token id "|" expiry (Unix seconds) "|" nonce (32 hex)
//
// The CSRF token of a session is HMAC-SHA256(csrfKey, nonce): bound to the
// session, unguessable without the key, and stateless too.

const (
	// cookieSecure is the cookie's name over TLS: the __Host- prefix makes
	// browsers insist on Secure, Path=/ and no Domain.
	cookieSecure = "__Host-portcullis-session"
	// cookiePlain is its name in --dev, where the API serves plain HTTP
	// and a Secure cookie would never come back.
	cookiePlain = "portcullis-session"
	// maxCookieLen bounds what parseSession reads.
	maxCookieLen = 256
	// nonceBytes is the size of a session's random nonce.
	nonceBytes = 16
)

// errBadSession is every reason a cookie is not a session of ours; the
// reasons are not told apart to anyone.
var errBadSession = errors.New("not a valid session")

// session is a signed-in browser.
type session struct {
	// TokenID is the admin token that signed in.
	TokenID string
	// Expires ends the session whatever the token's own expiry.
	Expires time.Time
	// Nonce makes each sign-in's session (and CSRF token) distinct.
	Nonce string
}

// keys are the session MAC and CSRF keys, derived from the cluster's
// key-encryption key (the same on every node).
type keys struct {
	mac, csrf []byte
}

// newKeys splits key material into the two keys. master must be at least
// 32 bytes.
func newKeys(master []byte) (keys, error) {
	if len(master) < 32 {
		return keys{}, fmt.Errorf("the web view's session key needs at least 32 bytes, got %d", len(master))
	}
	sub := func(purpose string) []byte {
		m := hmac.New(sha256.New, master)
		m.Write([]byte(purpose))
		return m.Sum(nil)
	}
	return keys{mac: sub("portcullis webui session mac v1"), csrf: sub("portcullis webui csrf v1")}, nil
}

// newSession starts a session for token id until expires.
func newSession(id string, expires time.Time) (session, error) {
	b := make([]byte, nonceBytes)
	if _, err := rand.Read(b); err != nil {
		return session{}, fmt.Errorf("session nonce: %w", err)
	}
	return session{TokenID: id, Expires: expires.Truncate(time.Second).UTC(), Nonce: hex.EncodeToString(b)}, nil
}

func (k keys) sign(payload []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write(payload)
	return m.Sum(nil)
}

// encode returns the cookie value of s.
func (k keys) encode(s session) string {
	payload := []byte("v1|" + s.TokenID + "|" + strconv.FormatInt(s.Expires.Unix(), 10) + "|" + s.Nonce)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(k.sign(payload))
}

// parseSession verifies a cookie value and returns its session. It checks
// the MAC (in constant time) before it looks at any field, and refuses an
// expired session. It does not check the token: see Handler.session.
func (k keys) parseSession(value string, now time.Time) (session, error) {
	if len(value) > maxCookieLen {
		return session{}, errBadSession
	}
	p64, m64, ok := strings.Cut(value, ".")
	if !ok {
		return session{}, errBadSession
	}
	payload, err := strictB64.DecodeString(p64)
	if err != nil {
		return session{}, errBadSession
	}
	mac, err := strictB64.DecodeString(m64)
	if err != nil || !hmac.Equal(mac, k.sign(payload)) {
		return session{}, errBadSession
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 4 || f[0] != "v1" || !isTokenID(f[1]) || len(f[3]) != 2*nonceBytes {
		return session{}, errBadSession
	}
	if _, err := hex.DecodeString(f[3]); err != nil {
		return session{}, errBadSession
	}
	exp, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || exp <= 0 {
		return session{}, errBadSession
	}
	s := session{TokenID: f[1], Expires: time.Unix(exp, 0).UTC(), Nonce: f[3]}
	if !now.Before(s.Expires) {
		return session{}, errBadSession
	}
	return s, nil
}

// isTokenID reports whether id has the shape of an admin token id (16
// lower-case hex digits).
func isTokenID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// csrfToken is the CSRF token of s.
func (k keys) csrfToken(s session) string {
	m := hmac.New(sha256.New, k.csrf)
	m.Write([]byte(s.Nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether got is s's CSRF token, in constant time.
func (k keys) checkCSRF(s session, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(k.csrfToken(s)))
}

// cookiePolicy sets and clears the session cookie.
type cookiePolicy struct {
	// secure is false only in --dev, where the API serves plain HTTP.
	secure bool
}

func (p cookiePolicy) name() string {
	if p.secure {
		return cookieSecure
	}
	return cookiePlain
}

// set writes the cookie of a new session: HttpOnly (no script reads it),
// SameSite=Strict (no other site's page sends it), Secure unless --dev,
// Path=/ (the __Host- prefix requires it), expiring with the session.
func (p cookiePolicy) set(w http.ResponseWriter, value string, expires, now time.Time) {
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // Secure unless --dev, whose plain HTTP would never send it back
		Name: p.name(), Value: value, Path: "/", Expires: expires, MaxAge: max(int(expires.Sub(now).Seconds()), 1),
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// clear removes the cookie.
func (p cookiePolicy) clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // as set
		Name: p.name(), Value: "", Path: "/", MaxAge: -1,
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// value returns the session cookie's value in r, if any.
func (p cookiePolicy) value(r *http.Request) string {
	c, err := r.Cookie(p.name())
	if err != nil {
		return ""
	}
	return c.Value
}

// strictB64 decodes only the canonical encoding, so that a cookie has
// exactly one spelling.
var strictB64 = base64.RawURLEncoding.Strict()
