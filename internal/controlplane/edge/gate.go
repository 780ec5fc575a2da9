// Package edge is the HTTP edge of the control plane's Connect APIs (the
// admin API, the audit service and config sync). Its Gate decides from the
// headers alone, before any byte of a body is read, whether a caller may
// call a procedure at all, and bounds what a permitted caller may send: a
// read limit sized to each procedure, on the wire and once decompressed,
// with the compression ratio bounded too. Its Error maps failures of the
// store, the cluster or the disk to Connect errors that are safe to show,
// logging the detail.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Rule is what the gate enforces for one procedure.
type Rule struct {
	// Role is the least role that may call it (tokenauth.Allows).
	Role configv1.Role
	// MaxBytes bounds the request message once decompressed.
	MaxBytes int
}

// Rules maps procedures ("/portcullis.admin.v1.AgentService/CreateAgent")
// to their rules. A procedure without a rule is not served: default deny.
type Rules map[string]Rule

// Build builds one service's Connect handler with the gate's handler
// options for one read limit (connect.WithReadMaxBytes and a bounded gzip
// decompressor) followed by the service's own; an option of the service's
// own that comes later wins (config sync turns gzip off).
type Build func(gateOpts ...connect.HandlerOption) (path string, h http.Handler)

// Service adapts a generated handler constructor to Build:
// Service(adminv1connect.NewAgentServiceHandler, api, opts...).
func Service[S any](ctor func(S, ...connect.HandlerOption) (string, http.Handler), impl S, own ...connect.HandlerOption) Build {
	return func(gateOpts ...connect.HandlerOption) (string, http.Handler) {
		return ctor(impl, append(gateOpts[:len(gateOpts):len(gateOpts)], own...)...)
	}
}

// Gate authenticates and bounds requests before Connect reads them. It is
// safe for concurrent use.
type Gate struct {
	auth  *tokenauth.Authenticator
	rules Rules
	log   *slog.Logger
	errw  *connect.ErrorWriter
}

// NewGate returns a gate enforcing rules with tokens resolved by auth.
func NewGate(auth *tokenauth.Authenticator, rules Rules, logger *slog.Logger) *Gate {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Gate{auth: auth, rules: rules, log: logger.With("component", "edge"), errw: connect.NewErrorWriter()}
}

// Mount returns the path and handler of the service build makes, behind
// the gate. Each distinct read limit among the service's procedures gets
// its own Connect handler, so that each procedure is held to its own.
func (g *Gate) Mount(build Build) (string, http.Handler) {
	path, _ := build()
	s := &service{gate: g, rules: Rules{}, handlers: map[int]http.Handler{}}
	for proc, rule := range g.rules {
		if !strings.HasPrefix(proc, path) {
			continue
		}
		s.rules[proc] = rule
		if _, ok := s.handlers[rule.MaxBytes]; !ok {
			_, s.handlers[rule.MaxBytes] = build(connect.WithReadMaxBytes(rule.MaxBytes), gzipOption(rule.MaxBytes))
		}
	}
	return path, s
}

type service struct {
	gate     *Gate
	rules    Rules
	handlers map[int]http.Handler
}

// WireLimit is how many body bytes a request for a procedure with read
// limit max may carry: the message, its envelope, and gzip's worst-case
// expansion of incompressible data.
func WireLimit(max int) int64 { return int64(max) + int64(max)/16 + 4<<10 }

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	proc := r.URL.Path
	rule, ok := s.rules[proc]
	if !ok {
		// As Connect answers a procedure it does not serve.
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	var tok tokenauth.Token
	var err error
	if v, ok := verifiedFrom(ctx); ok {
		tok, err = s.gate.allow(ctx, proc, rule, v)
	} else {
		tok, err = s.gate.authorize(ctx, proc, rule, r.Header.Get("Authorization"))
	}
	if err != nil {
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis"`)
		}
		_ = s.gate.errw.Write(w, r, err)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, WireLimit(rule.MaxBytes))
	}
	s.handlers[rule.MaxBytes].ServeHTTP(w, r.WithContext(tokenauth.NewContext(ctx, tok)))
}

// authorize resolves the caller's token and checks its role, returning a
// Connect error for the client on refusal.
func (g *Gate) authorize(ctx context.Context, proc string, rule Rule, authorization string) (tokenauth.Token, error) {
	tok, err := g.auth.Authenticate(ctx, authorization)
	switch {
	case err == nil:
	case errors.Is(err, tokenauth.ErrRefused):
		if tok.ID != "" {
			// A well-formed token that is not (or no longer) valid; a
			// missing or malformed one is not worth a line per request.
			g.log.WarnContext(ctx, "API call refused: bad token", "procedure", proc, "token_id", tok.ID)
		}
		return tokenauth.Token{}, connect.NewError(connect.CodeUnauthenticated, tokenauth.ErrRefused)
	case errors.Is(err, tokenauth.ErrCannotVerify):
		g.log.WarnContext(ctx, "API call: cannot verify token while catching up", "procedure", proc, "token_id", tok.ID, "err", err)
		return tokenauth.Token{}, connect.NewError(connect.CodeUnavailable, tokenauth.ErrCannotVerify)
	default:
		return tokenauth.Token{}, Error(ctx, g.log, err)
	}
	return g.allow(ctx, proc, rule, tok)
}

// allow checks a verified token's role against the procedure's rule.
func (g *Gate) allow(ctx context.Context, proc string, rule Rule, tok tokenauth.Token) (tokenauth.Token, error) {
	if !tokenauth.Allows(tok.Role, rule.Role) {
		g.log.WarnContext(ctx, "API call refused: role", "procedure", proc, "token_id", tok.ID, "role", tokenauth.RoleName(tok.Role))
		return tokenauth.Token{}, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("token lacks role %s (it has %s)", tokenauth.RoleName(rule.Role), tokenauth.RoleName(tok.Role)))
	}
	return tok, nil
}

// verifiedKey carries a token this process verified itself.
type verifiedKey struct{}

// WithVerified returns ctx carrying tok as a caller this process has
// already verified by other means than the Authorization header: the web
// view's session, which is re-checked against the token records on every
// request. A gated handler served a request with such a context skips the
// header and enforces only the procedure's role, so the view's calls go
// through the same handlers, roles and limits as gwctl's. Only code in
// this process can set it: a request from the network never carries it.
func WithVerified(ctx context.Context, tok tokenauth.Token) context.Context {
	return context.WithValue(ctx, verifiedKey{}, tok)
}

func verifiedFrom(ctx context.Context) (tokenauth.Token, bool) {
	tok, ok := ctx.Value(verifiedKey{}).(tokenauth.Token)
	return tok, ok && tok.ID != ""
}
