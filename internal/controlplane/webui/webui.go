// Package webui serves the control plane's web view for operators and
// auditors under /ui/ on the API listener: cluster and data planes,
// agents, upstreams and tool pins, policy sets, audit search with CSV
// download, and "who can call tool X?".
//
// Decision: the pages are rendered on the server (html/template) and carry
// no script at all. Every value reaches the browser through the template's
// contextual escaping, so the Content-Security-Policy can forbid every
// script outright; forms and links make the view keyboard-navigable
// without any code; nothing is built or fetched at run time. The pages get
// their data by calling the admin API's own handlers in-process as the
// signed-in token (Clients), so the view can do nothing gwctl cannot, and
// every role check is the API's.
//
// Security: a browser signs in with an admin token, which the view checks
// as the API does and records in the replicated admin log (and so in the
// control plane's audit chain) before it sets a stateless session cookie
// (session.go) that names the token but never holds it. Every request
// re-checks the token's record, so revoking or expiring the token ends its
// sessions at once. Sign-ins are rate-limited per source. Writes happen
// only when the control plane runs with --web-writes, only through POST
// with the session's CSRF token from a page of the view's own origin, and
// only when the token's role allows the API procedure.
package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the view is served under.
const Prefix = "/ui/"

// DefaultSessionTTL is how long a sign-in lasts at most (less when the
// token expires sooner).
const DefaultSessionTTL = 8 * time.Hour

// TokenReader reads the replicated token records. It must be safe for
// concurrent use.
type TokenReader interface {
	State(ctx context.Context, linearizable bool) (*state.State, error)
}

// SignInRecorder records a sign-in in the replicated admin log. The view
// refuses a sign-in it could not record. It must be safe for concurrent
// use; its error is shown to the user.
type SignInRecorder interface {
	RecordSignIn(ctx context.Context, tok tokenauth.Token, source netip.Addr) error
}

// Config configures the view.
type Config struct {
	// API serves the admin API's gated routes (adminapi.API.Routes); the
	// view calls them in-process.
	API http.Handler
	// Tokens reads the token records each request's session is checked
	// against.
	Tokens TokenReader
	// Auth verifies the token a user signs in with, as the API does.
	Auth *tokenauth.Authenticator
	// Recorder records sign-ins.
	Recorder SignInRecorder
	// Key keys session cookies and CSRF tokens: at least 32 bytes, the
	// same on every node (seal.Sealer.Derive), so a session works on any
	// node of the cluster.
	Key []byte
	// Writes enables changes from the view (--web-writes).
	Writes bool
	// Secure marks the session cookie Secure; false only in --dev, where
	// the API serves plain HTTP and a browser would never send a Secure
	// cookie back.
	Secure bool
	// History fills the policy page's history and rollout section (nil:
	// the section says they are not available yet).
	History PolicyHistory
	// SessionTTL bounds a session (0: DefaultSessionTTL).
	SessionTTL time.Duration
	Logger     *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.API == nil || c.Tokens == nil || c.Auth == nil || c.Recorder == nil {
		errs = append(errs, errors.New("webui: API, Tokens, Auth and Recorder are required"))
	}
	if len(c.Key) < 32 {
		errs = append(errs, fmt.Errorf("webui: the session key needs at least 32 bytes, got %d", len(c.Key)))
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.SessionTTL < 0 {
		errs = append(errs, errors.New("webui: the session lifetime must be positive"))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return errors.Join(errs...)
}

// Handler serves the view. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	keys    keys
	cookie  cookiePolicy
	limiter *signInLimiter
	api     *Clients
	pages   map[string]*template.Template
	mux     *http.ServeMux
	log     *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New returns the view's handler; mount it at Prefix.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k, err := newKeys(cfg.Key)
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg: cfg, keys: k, cookie: cookiePolicy{secure: cfg.Secure}, limiter: newSignInLimiter(),
		api: newClients(cfg.API), pages: pages, mux: http.NewServeMux(), log: cfg.Logger.With("component", "webui"),
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	static, _ := fs.Sub(assets, "assets/static")
	h.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /ui/{$}", h.home)
	h.mux.HandleFunc("GET /ui/signin", h.signInPage)
	h.mux.HandleFunc("POST /ui/signin", h.signIn)
	h.mux.HandleFunc("POST /ui/signout", h.signOut)
	h.mux.HandleFunc("GET /ui/cluster", h.read(h.clusterPage))
	h.mux.HandleFunc("GET /ui/agents", h.read(h.agentsPage))
	h.mux.HandleFunc("GET /ui/upstreams", h.read(h.upstreamsPage))
	h.mux.HandleFunc("GET /ui/policies", h.read(h.policiesPage))
	h.mux.HandleFunc("GET /ui/audit", h.read(h.auditPage))
	h.mux.HandleFunc("GET /ui/audit.csv", h.read(h.auditCSV))
	h.mux.HandleFunc("GET /ui/access", h.read(h.accessPage))
	h.mux.HandleFunc("POST /ui/freeze", h.write(h.freeze))
	h.mux.HandleFunc("POST /ui/agents/disabled", h.write(h.setAgentDisabled))
	h.mux.HandleFunc("POST /ui/policies/rollout", h.write(h.rolloutAction))
	h.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
}

// ServeHTTP serves the view with its security headers on every response.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w.Header())
	h.mux.ServeHTTP(w, r)
}

// user is the signed-in caller of a request.
type user struct {
	sess session
	tok  tokenauth.Token
}

// request is an authenticated request.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	user user
	// ctx carries the token for in-process API calls.
	ctx context.Context
}

// session returns the request's signed-in user: the cookie's MAC and
// expiry, then the token's record, which must still exist, not have
// expired, and hold a role a person signs in with. ok is false when there
// is none; err when the records cannot be read.
func (h *Handler) session(r *http.Request) (u user, ok bool, err error) {
	v := h.cookie.value(r)
	if v == "" {
		return user{}, false, nil
	}
	now := h.cfg.Now()
	s, perr := h.keys.parseSession(v, now)
	if perr != nil {
		return user{}, false, nil //nolint:nilerr // a cookie that is not a session is no session, not a failure
	}
	st, err := h.cfg.Tokens.State(r.Context(), false)
	if err != nil {
		return user{}, false, fmt.Errorf("read token records: %w", err)
	}
	rec, found := st.Get(resource.AdminToken, s.TokenID)
	if !found {
		return user{}, false, nil
	}
	t := rec.GetAdminToken()
	if exp := t.GetExpireTime(); exp != nil && !now.Before(exp.AsTime()) {
		return user{}, false, nil
	}
	if !personRole(t.GetRole()) {
		return user{}, false, nil
	}
	return user{sess: s, tok: tokenauth.Token{ID: s.TokenID, Role: t.GetRole()}}, true, nil
}

// personRole reports whether a token of role r may sign in: auditor,
// operator or admin, never a data plane's.
func personRole(r configv1.Role) bool {
	return r == configv1.Role_ROLE_AUDITOR || r == configv1.Role_ROLE_OPERATOR || r == configv1.Role_ROLE_ADMIN
}

// authed runs fn for a signed-in request; others get no data: a page
// request goes to the sign-in page, anything else is refused.
func (h *Handler) authed(fn func(*request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := h.session(r)
		if err != nil {
			h.log.WarnContext(r.Context(), "web view: cannot check a session", "err", err)
			h.fail(w, r, nil, http.StatusServiceUnavailable, "This node cannot check your session right now; retry, or use another node.")
			return
		}
		if !ok {
			if h.cookie.value(r) != "" {
				h.cookie.clear(w)
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
				return
			}
			h.fail(w, r, nil, http.StatusUnauthorized, "You are not signed in, or your session ended. Sign in again.")
			return
		}
		req := &request{w: w, r: r, user: u, ctx: asUser(r.Context(), u.tok)}
		if err := fn(req); err != nil {
			h.apiError(w, r, &u, err)
		}
	}
}

// read serves a page that only reads.
func (h *Handler) read(fn func(*request) error) http.HandlerFunc { return h.authed(fn) }

// maxFormBytes bounds a form the view accepts.
const maxFormBytes = 16 << 10

// write serves a change: from the view's own origin, with the session's
// CSRF token, only with --web-writes; the API checks the role. fn returns
// where to go next.
func (h *Handler) write(fn func(*request) (string, error)) http.HandlerFunc {
	return h.authed(func(req *request) error {
		w, r := req.w, req.r
		if !sameOrigin(r) {
			h.fail(w, r, &req.user, http.StatusForbidden, "The change was refused: it did not come from a page of this view.")
			return nil
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if r.ParseForm() != nil {
			h.fail(w, r, &req.user, http.StatusBadRequest, "The form could not be read.")
			return nil //nolint:nilerr // answered with the error page
		}
		if !h.keys.checkCSRF(req.user.sess, r.PostForm.Get("csrf")) {
			h.log.WarnContext(r.Context(), "web view: write refused: missing or wrong CSRF token", "path", r.URL.Path, "token_id", req.user.tok.ID)
			h.fail(w, r, &req.user, http.StatusForbidden, "The change was refused: the form's CSRF token is missing or wrong. Reload the page and try again.")
			return nil
		}
		if !h.cfg.Writes {
			h.fail(w, r, &req.user, http.StatusForbidden, "Changes from the web view are turned off. Start the control plane with --web-writes to allow them, or use gwctl.")
			return nil
		}
		next, err := fn(req)
		if err != nil || next == "" {
			return err // "": fn rendered its own refusal
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	})
}

// withRequestID sets the form's request id on a write, so that a form
// submitted twice is applied once (the API deduplicates on it).
func withRequestID[T any](r *http.Request, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if id := r.PostForm.Get("request_id"); id != "" {
		req.Header().Set(adminapi.HeaderRequestID, id)
	}
	return req
}

// apiError renders an API call's failure. Connect errors' messages are
// safe to show by the API's design.
func (h *Handler) apiError(w http.ResponseWriter, r *http.Request, u *user, err error) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		h.log.ErrorContext(r.Context(), "web view: page failed", "path", r.URL.Path, "err", err)
		h.fail(w, r, u, http.StatusInternalServerError, "The page failed; the control plane's log says why.")
		return
	}
	status := http.StatusBadGateway
	switch ce.Code() {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		status = http.StatusBadRequest
	case connect.CodeUnauthenticated:
		status = http.StatusUnauthorized
	case connect.CodePermissionDenied:
		status = http.StatusForbidden
	case connect.CodeNotFound:
		status = http.StatusNotFound
	case connect.CodeAlreadyExists, connect.CodeAborted, connect.CodeFailedPrecondition:
		status = http.StatusConflict
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		status = http.StatusServiceUnavailable
	case connect.CodeResourceExhausted:
		status = http.StatusTooManyRequests
	}
	h.fail(w, r, u, status, fmt.Sprintf("The control plane refused: %s (%s).", ce.Message(), ce.Code()))
}

// fail renders the error page.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, u *user, status int, msg string) {
	h.render(w, r, u, status, "error", page{Title: http.StatusText(status), Error: msg})
}
