package webui

import (
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
)

// home sends a signed-in user to the cluster page, anyone else to sign in.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if _, ok, _ := h.session(r); ok {
		http.Redirect(w, r, "/ui/cluster", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}

// signInData is the sign-in page's content.
type signInData struct {
	SignedOut bool
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok, _ := h.session(r); ok {
		http.Redirect(w, r, "/ui/cluster", http.StatusSeeOther)
		return
	}
	h.render(w, r, nil, http.StatusOK, "signin", page{Title: "Sign in", Data: signInData{SignedOut: r.URL.Query().Has("signed-out")}})
}

// signInRefused renders the sign-in page again with why.
func (h *Handler) signInRefused(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, nil, status, "signin", page{Title: "Sign in", Error: msg, Data: signInData{}})
}

// signIn checks an admin token as the API does, records the sign-in in the
// admin log, and starts a session.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src := clientAddr(r)
	if !sameOrigin(r) {
		h.log.WarnContext(ctx, "web sign-in refused: cross-site request", "source", src,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		h.signInRefused(w, r, http.StatusForbidden, "The sign-in was refused: it did not come from this view's own page.")
		return
	}
	now := h.cfg.Now()
	if !h.limiter.allow(src, now) {
		h.log.WarnContext(ctx, "web sign-in refused: too many attempts", "source", src)
		w.Header().Set("Retry-After", "60")
		h.signInRefused(w, r, http.StatusTooManyRequests, "Too many sign-in attempts from your address. Wait a minute, then try again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.signInRefused(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	text := strings.TrimSpace(r.PostForm.Get("token"))
	tok, err := h.cfg.Auth.Authenticate(ctx, "Bearer "+text)
	switch {
	case err == nil:
	case errors.Is(err, tokenauth.ErrRefused):
		h.log.WarnContext(ctx, "web sign-in refused: bad token", "source", src, "token_id", tok.ID)
		h.signInRefused(w, r, http.StatusUnauthorized, "The token was refused: it is missing, malformed, unknown, revoked or expired.")
		return
	case errors.Is(err, tokenauth.ErrCannotVerify):
		h.signInRefused(w, r, http.StatusServiceUnavailable, tokenauth.ErrCannotVerify.Error())
		return
	default:
		h.log.ErrorContext(ctx, "web sign-in: cannot check the token", "source", src, "err", err)
		h.signInRefused(w, r, http.StatusServiceUnavailable, "This node cannot check tokens right now; retry, or use another node.")
		return
	}
	if !personRole(tok.Role) {
		h.log.WarnContext(ctx, "web sign-in refused: not a person's token", "source", src, "token_id", tok.ID, "role", tokenauth.RoleName(tok.Role))
		h.signInRefused(w, r, http.StatusForbidden, "Only admin tokens (roles auditor, operator or admin) sign in here, not a data plane's.")
		return
	}
	expires := now.Add(h.cfg.SessionTTL)
	if st, err := h.cfg.Tokens.State(ctx, false); err == nil {
		if rec, ok := st.Get(resource.AdminToken, tok.ID); ok && rec.GetAdminToken().GetExpireTime() != nil {
			if exp := rec.GetAdminToken().GetExpireTime().AsTime(); exp.Before(expires) {
				expires = exp
			}
		}
	}
	if err := h.cfg.Recorder.RecordSignIn(ctx, tok, src); err != nil {
		h.log.WarnContext(ctx, "web sign-in refused: cannot record it", "source", src, "token_id", tok.ID, "err", err)
		msg := "the admin log could not record it"
		var ce *connect.Error
		if errors.As(err, &ce) {
			msg += ": " + ce.Message()
		}
		h.signInRefused(w, r, http.StatusServiceUnavailable, "The sign-in was refused because "+msg+". Retry in a moment.")
		return
	}
	sess, err := newSession(tok.ID, expires)
	if err != nil {
		h.log.ErrorContext(ctx, "web sign-in: start session", "err", err)
		h.signInRefused(w, r, http.StatusInternalServerError, "The session could not be started; the control plane's log says why.")
		return
	}
	h.cookie.set(w, h.keys.encode(sess), sess.Expires, now)
	h.log.InfoContext(ctx, "web sign-in", "source", src, "token_id", tok.ID, "role", tokenauth.RoleName(tok.Role), "until", sess.Expires)
	http.Redirect(w, r, "/ui/cluster", http.StatusSeeOther)
}

// signOut ends the browser's session (with the CSRF token, so that no other
// site can sign a user out). The cookie is stateless: a copy taken before
// stays valid until it expires; revoking the token ends every session of
// it at once.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	u, ok, _ := h.session(r)
	if !ok {
		h.cookie.clear(w)
		http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if !sameOrigin(r) || r.ParseForm() != nil || !h.keys.checkCSRF(u.sess, r.PostForm.Get("csrf")) {
		h.fail(w, r, &u, http.StatusForbidden, "The sign-out was refused: the form's CSRF token is missing or wrong. Reload the page and try again.")
		return
	}
	h.cookie.clear(w)
	http.Redirect(w, r, "/ui/signin?signed-out", http.StatusSeeOther)
}
