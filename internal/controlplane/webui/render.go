package webui

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/auditcsv"
	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// page is what every template gets.
type page struct {
	// Title is the page's own title; the document title adds the product.
	Title string
	// Nav is the navigation entry of the page ("cluster", "audit", …).
	Nav string
	// User is the signed-in user; nil on the sign-in and error pages
	// before sign-in.
	User *userView
	// Writes says whether the control plane allows writes from the view.
	Writes bool
	// Notice is a message about the last action; Error one about a
	// failure.
	Notice, Error string
	// Data is the page's own content.
	Data any
}

// userView is the signed-in user as pages show them.
type userView struct {
	TokenID string
	Role    string
	// CSRF is the session's CSRF token, for every form that changes
	// something.
	CSRF string
	// writes and role decide Can.
	writes bool
	tok    tokenauth.Token
}

// Can reports whether the user may call an API procedure (by its short
// name, as in canProcedures) from the view: writes are on and the token's
// role allows it. Pages use it to enable forms; the API enforces it.
func (u *userView) Can(name string) bool {
	proc, ok := canProcedures[name]
	return ok && u.CanCall(proc)
}

// CanCall is Can for a procedure given by its full name.
func (u *userView) CanCall(proc string) bool {
	if !u.writes {
		return false
	}
	rule, ok := adminapi.Procedures()[proc]
	return ok && tokenauth.Allows(u.tok.Role, rule.Role)
}

// RequestID is a fresh request id for a form, so that submitting it twice
// changes state once.
func (u *userView) RequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "web-" + hex.EncodeToString(b)
}

func (h *Handler) userView(u *user) *userView {
	if u == nil {
		return nil
	}
	return &userView{TokenID: u.tok.ID, Role: tokenauth.RoleName(u.tok.Role), CSRF: h.keys.csrfToken(u.sess), writes: h.cfg.Writes, tok: u.tok}
}

// pageNames are the templates in assets/, each rendered inside
// layout.html.
var pageNames = []string{"signin", "error", "cluster", "agents", "upstreams", "policies", "audit", "access"}

var funcs = template.FuncMap{
	"time": func(ts *timestamppb.Timestamp) string {
		if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
			return "-"
		}
		return ts.AsTime().UTC().Format("2006-01-02 15:04:05Z")
	},
	"gotime": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"short":  toolpin.Short,
	"actor":  auditcsv.Actor,
	"target": auditcsv.Target,
	"limits": auditcsv.Limits,
	"join":   strings.Join,
	"enum": func(s fmt.Stringer, prefix string) string {
		return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.String(), prefix), "_", "-"))
	},
	"dash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("webui: parse page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page. It renders into a buffer first, so that a
// template failure becomes a clean error page, never half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, u *user, status int, name string, p page) {
	p.User = h.userView(u)
	p.Writes = h.cfg.Writes
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		h.log.ErrorContext(r.Context(), "web view: render page", "page", name, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("The page could not be rendered; the control plane's log says why.\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
