package webui_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditcsv"
	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// The tests below drive the web view of a real one-node control plane
// (TLS unless they say --dev) over HTTP, as a browser would: a cookie jar,
// no automatic redirects, and the Origin header a browser sends on its
// own forms.

// bearer sets the admin token on API calls.
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, r connect.AnyRequest) (connect.AnyResponse, error) {
		r.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, r)
	}
}
func (b bearer) WrapStreamingClient(n connect.StreamingClientFunc) connect.StreamingClientFunc {
	return n
}
func (b bearer) WrapStreamingHandler(n connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return n
}

// newToken creates a token of role with ttl through the admin API (as
// gwctl does) and returns its id and text.
func newToken(t *testing.T, n *cptest.Node, role configv1.Role, ttl time.Duration) (id, text string) {
	t.Helper()
	c := adminv1connect.NewTokenServiceClient(n.HTTPClient, n.URL, connect.WithInterceptors(bearer(n.AdminToken)))
	res, err := c.CreateToken(context.Background(), connect.NewRequest(&adminv1.CreateTokenRequest{Role: role, Ttl: durationpb.New(ttl)}))
	if err != nil {
		t.Fatalf("create %s token: %v", role, err)
	}
	return res.Msg.GetToken().GetMeta().GetName(), res.Msg.GetSecret()
}

// dataplaneToken issues a data plane's join credential and returns the
// token in it.
func dataplaneToken(t *testing.T, n *cptest.Node) string {
	t.Helper()
	c := adminv1connect.NewDataplaneServiceClient(n.HTTPClient, n.URL, connect.WithInterceptors(bearer(n.AdminToken)))
	res, err := c.CreateJoinCredential(context.Background(), connect.NewRequest(&adminv1.CreateJoinCredentialRequest{Name: "dp1"}))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := joincred.Parse(res.Msg.GetCredential())
	if err != nil {
		t.Fatal(err)
	}
	return cred.Token
}

func revokeToken(t *testing.T, n *cptest.Node, id string) {
	t.Helper()
	c := adminv1connect.NewTokenServiceClient(n.HTTPClient, n.URL, connect.WithInterceptors(bearer(n.AdminToken)))
	if _, err := c.RevokeToken(context.Background(), connect.NewRequest(&adminv1.RevokeTokenRequest{Id: id})); err != nil {
		t.Fatalf("revoke token: %v", err)
	}
}

func frozen(t *testing.T, n *cptest.Node) bool {
	t.Helper()
	c := adminv1connect.NewDataplaneServiceClient(n.HTTPClient, n.URL, connect.WithInterceptors(bearer(n.AdminToken)))
	res, err := c.ListDataplanes(context.Background(), connect.NewRequest(&adminv1.ListDataplanesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetFrozen()
}

// agent is a browser: its own cookie jar against node n.
type agent struct {
	t *testing.T
	n *cptest.Node
	c *http.Client
}

func newAgent(t *testing.T, n *cptest.Node) *agent {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &agent{t: t, n: n, c: &http.Client{
		Transport: n.HTTPClient.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is a response with its body read.
type response struct {
	*http.Response
	body string
}

func (a *agent) do(req *http.Request) response {
	a.t.Helper()
	res, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return response{res, string(b)}
}

func (a *agent) get(path string) response {
	a.t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.n.URL+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.do(req)
}

// post submits a form from origin (a.n.URL: the view's own page).
func (a *agent) post(path string, form url.Values, origin string) response {
	a.t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.n.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return a.do(req)
}

func (a *agent) signIn(token string) response {
	a.t.Helper()
	return a.post("/ui/signin", url.Values{"token": {token}}, a.n.URL)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page's forms.
func (a *agent) csrf(path string) string {
	a.t.Helper()
	m := csrfRE.FindStringSubmatch(a.get(path).body)
	if m == nil {
		a.t.Fatalf("%s has no form with a CSRF token", path)
	}
	return m[1]
}

func wantStatus(t *testing.T, what string, r response, status int, contains ...string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, r.StatusCode, status, r.body)
	}
	for _, c := range contains {
		if !strings.Contains(r.body, c) {
			t.Fatalf("%s: body lacks %q:\n%s", what, c, r.body)
		}
	}
}

func wantRedirect(t *testing.T, what string, r response, to string) {
	t.Helper()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != to {
		t.Fatalf("%s: %d to %q, want 303 to %q; body:\n%s", what, r.StatusCode, r.Header.Get("Location"), to, r.body)
	}
}

// TestSignedOutSeesNothing: without a session every page leads to the
// sign-in page and every change is refused, and no response carries the
// cluster's data.
func TestSignedOutSeesNothing(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true, WebWrites: true})
	a := newAgent(t, n)
	for _, p := range []string{"/ui/", "/ui/cluster", "/ui/agents", "/ui/upstreams", "/ui/policies", "/ui/audit?search=1", "/ui/audit.csv", "/ui/access?tool=x"} {
		wantRedirect(t, "GET "+p, a.get(p), "/ui/signin")
	}
	for _, p := range []string{"/ui/freeze", "/ui/agents/disabled", "/ui/policies/rollout"} {
		wantStatus(t, "POST "+p, a.post(p, url.Values{"frozen": {"on"}}, n.URL), http.StatusUnauthorized, "not signed in")
	}
	r := a.get("/ui/signin")
	wantStatus(t, "sign-in page", r, http.StatusOK, "<title>Sign in · Portcullis</title>", `name="token"`)
	if strings.Contains(r.body, "n1") || strings.Contains(r.body, "csrf") {
		t.Fatalf("the sign-in page shows cluster data or a CSRF token:\n%s", r.body)
	}
	// A forged cookie is no session.
	forged := newAgent(t, n)
	u, _ := url.Parse(n.URL)
	forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-portcullis-session", Value: "djF8MDEyMzQ1Njc4OWFiY2RlZnw5OTk5OTk5OTk5fDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw.AAAA", Path: "/"}})
	wantRedirect(t, "GET with a forged cookie", forged.get("/ui/cluster"), "/ui/signin")
	if frozen(t, n) {
		t.Fatal("a signed-out POST froze the cluster")
	}
}

// TestHeadersOnEveryResponse: the security headers are on pages, errors,
// redirects and the stylesheet alike.
func TestHeadersOnEveryResponse(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true})
	a := newAgent(t, n)
	for _, p := range []string{"/ui/signin", "/ui/cluster", "/ui/nope", "/ui/static/style.css"} {
		r := a.get(p)
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", p, r.Header)
		}
	}
	if r := a.get("/ui/static/style.css"); r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	// No page carries a script, inline or not, nor an inline style.
	_, text := newToken(t, n, configv1.Role_ROLE_ADMIN, time.Hour)
	a.signIn(text)
	for _, p := range []string{"/ui/signin", "/ui/cluster", "/ui/agents", "/ui/upstreams", "/ui/policies", "/ui/audit?search=1", "/ui/access"} {
		body := strings.ToLower(a.get(p).body)
		for _, bad := range []string{"<script", "style=", " on", "javascript:"} {
			if bad == " on" {
				if regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
					t.Errorf("%s has an inline event handler", p)
				}
				continue
			}
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

// TestSignIn: a good token starts a session in a cookie with the
// attributes the design requires, and the sign-in is in the admin log; a
// bad token, a data plane's token and a cross-site form are refused
// without a cookie.
func TestSignIn(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true})
	a := newAgent(t, n)

	wantStatus(t, "bad token", a.signIn("pct_0123456789abcdef_nope"), http.StatusUnauthorized, "The token was refused")
	wantStatus(t, "empty token", a.signIn(""), http.StatusUnauthorized)
	wantStatus(t, "data plane token", a.signIn(dataplaneToken(t, n)), http.StatusForbidden, "not a data plane")
	_, op := newToken(t, n, configv1.Role_ROLE_OPERATOR, time.Hour)
	wantStatus(t, "cross-site sign-in", a.post("/ui/signin", url.Values{"token": {op}}, "https://evil.example"), http.StatusForbidden)
	u, _ := url.Parse(n.URL)
	if c := a.c.Jar.Cookies(u); len(c) != 0 {
		t.Fatalf("refused sign-ins left cookies %v", c)
	}

	id, text := newToken(t, n, configv1.Role_ROLE_AUDITOR, time.Hour)
	r := a.signIn(text)
	wantRedirect(t, "sign-in", r, "/ui/cluster")
	cookies := r.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("sign-in set %d cookies", len(cookies))
	}
	c := cookies[0]
	if c.Name != "__Host-portcullis-session" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("session cookie %+v: want __Host-, HttpOnly, Secure, SameSite=Strict, Path=/, no Domain", c)
	}
	// The secret is everything after the id: base64url text, which may
	// itself hold "_" (or start with one, which made a plain Split's
	// third part empty and the check fire on every cookie).
	secret := strings.SplitN(text, "_", 3)[2]
	if len(secret) < 16 {
		t.Fatalf("token %q: secret part too short to check for", text)
	}
	if strings.Contains(c.Value, text) || strings.Contains(c.Value, secret) {
		t.Fatal("the cookie carries the token's secret")
	}
	if c.MaxAge <= 0 || c.MaxAge > int((8*time.Hour).Seconds()) {
		t.Fatalf("cookie Max-Age %d, want at most 8h", c.MaxAge)
	}
	page := a.get("/ui/cluster")
	wantStatus(t, "cluster page", page, http.StatusOK, id, "auditor", "<title>Cluster and data planes · Portcullis</title>")

	events := adminv1connect.NewAdminLogServiceClient(n.HTTPClient, n.URL, connect.WithInterceptors(bearer(n.AdminToken)))
	res, err := events.ListAdminEvents(context.Background(), connect.NewRequest(&adminv1.ListAdminEventsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range res.Msg.GetEvents() {
		if ev.GetOp() == "sign-in" && ev.GetActor().GetTokenId() == id && ev.GetSourceIp() == "127.0.0.1" && ev.GetErrorCode() == "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no sign-in event of %s from 127.0.0.1 in the admin log: %v", id, res.Msg.GetEvents())
	}
}

// TestSignInRateLimited: past its burst, a source is refused before its
// token is even looked at.
func TestSignInRateLimited(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true})
	a := newAgent(t, n)
	refused := 0
	for range 30 {
		if r := a.signIn("pct_0123456789abcdef_nope"); r.StatusCode == http.StatusTooManyRequests {
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			refused++
		}
	}
	if refused < 15 {
		t.Fatalf("%d of 30 quick sign-ins refused for their rate, want most", refused)
	}
	_, text := newToken(t, n, configv1.Role_ROLE_ADMIN, time.Hour)
	wantStatus(t, "a good token from the limited source", a.signIn(text), http.StatusTooManyRequests)
}

// TestSessionEndsWithToken: revoking the token, or its expiry, ends every
// session of it at the next request.
func TestSessionEndsWithToken(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true})
	a := newAgent(t, n)
	id, text := newToken(t, n, configv1.Role_ROLE_OPERATOR, time.Hour)
	a.signIn(text)
	wantStatus(t, "before revocation", a.get("/ui/cluster"), http.StatusOK)
	revokeToken(t, n, id)
	wantRedirect(t, "after revocation", a.get("/ui/cluster"), "/ui/signin")

	// A token that expires in 2s: its cookie, replayed by hand after
	// that, is refused even though its MAC is good.
	b := newAgent(t, n)
	_, short := newToken(t, n, configv1.Role_ROLE_OPERATOR, 2*time.Second)
	r := b.signIn(short)
	wantRedirect(t, "sign-in with a short token", r, "/ui/cluster")
	cookie := r.Cookies()[0]
	if cookie.MaxAge > 2 {
		t.Fatalf("the session outlives its token: Max-Age %d", cookie.MaxAge)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/ui/cluster", nil)
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		res := newAgent(t, n).do(req)
		if res.StatusCode == http.StatusSeeOther && res.Header.Get("Location") == "/ui/signin" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session of an expired token still serves: %d", res.StatusCode)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not a settle wait: the token expires on the server's clock
	}
}

// TestWrites: an operator's write needs the session's CSRF token and the
// view's own origin; an auditor's write is refused by the API's role
// check; and without --web-writes nothing is changed.
func TestWrites(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true, WebWrites: true})
	op := newAgent(t, n)
	_, opText := newToken(t, n, configv1.Role_ROLE_OPERATOR, time.Hour)
	op.signIn(opText)
	opCSRF := op.csrf("/ui/cluster")
	other := newAgent(t, n)
	other.signIn(opText)
	otherCSRF := other.csrf("/ui/cluster")

	tests := []struct {
		name   string
		form   url.Values
		origin string
		status int
		want   string
	}{
		{"no CSRF token", url.Values{"frozen": {"on"}}, n.URL, http.StatusForbidden, "CSRF token is missing or wrong"},
		{"another session's CSRF token", url.Values{"frozen": {"on"}, "csrf": {otherCSRF}}, n.URL, http.StatusForbidden, "CSRF token is missing or wrong"},
		{"from another site", url.Values{"frozen": {"on"}, "csrf": {opCSRF}}, "https://evil.example", http.StatusForbidden, "did not come from a page of this view"},
		{"neither on nor off", url.Values{"frozen": {"maybe"}, "csrf": {opCSRF}}, n.URL, http.StatusBadRequest, "on or off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, tt.name, op.post("/ui/freeze", tt.form, tt.origin), tt.status, tt.want)
			if frozen(t, n) {
				t.Fatal("the refused write froze the cluster")
			}
		})
	}

	r := op.post("/ui/freeze", url.Values{"frozen": {"on"}, "reason": {"unit test"}, "csrf": {opCSRF}, "request_id": {"web-test-1"}}, n.URL)
	wantRedirect(t, "operator freeze", r, "/ui/cluster?done=frozen")
	if !frozen(t, n) {
		t.Fatal("the operator's freeze did not freeze")
	}
	wantStatus(t, "cluster page after the freeze", op.get("/ui/cluster?done=frozen"), http.StatusOK, `id="frozen"`, "unit test", "The emergency brake is on")

	// Agents are disabled and enabled the same way.
	agents := adminv1connect.NewAgentServiceClient(n.HTTPClient, n.URL, connect.WithInterceptors(bearer(n.AdminToken)))
	if _, err := agents.CreateAgent(context.Background(), connect.NewRequest(&adminv1.CreateAgentRequest{
		Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "bot"}, Team: "ops"}, NoApiKey: true,
	})); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "agents page", op.get("/ui/agents"), http.StatusOK, `data-agent="bot"`, `name="disabled" value="true"`)
	for _, disable := range []string{"true", "false"} {
		r := op.post("/ui/agents/disabled", url.Values{"agent": {"bot"}, "disabled": {disable}, "csrf": {opCSRF}}, n.URL)
		want := map[string]string{"true": "/ui/agents?done=agent-disabled", "false": "/ui/agents?done=agent-enabled"}[disable]
		wantRedirect(t, "agent disabled="+disable, r, want)
		res, err := agents.GetAgent(context.Background(), connect.NewRequest(&adminv1.GetAgentRequest{Name: "bot"}))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(res.Msg.GetAgent().GetDisabled()); got != disable {
			t.Fatalf("after the form, disabled = %s, want %s", got, disable)
		}
	}
	wantStatus(t, "disable a missing agent", op.post("/ui/agents/disabled", url.Values{"agent": {"nobody"}, "disabled": {"true"}, "csrf": {opCSRF}}, n.URL),
		http.StatusNotFound, "nobody")

	aud := newAgent(t, n)
	_, audText := newToken(t, n, configv1.Role_ROLE_AUDITOR, time.Hour)
	aud.signIn(audText)
	page := aud.get("/ui/cluster")
	wantStatus(t, "auditor's cluster page", page, http.StatusOK, `<fieldset id="freeze-form" disabled>`, "Your role (auditor) cannot change this")
	r = aud.post("/ui/freeze", url.Values{"frozen": {"off"}, "csrf": {aud.csrf("/ui/cluster")}}, n.URL)
	wantStatus(t, "auditor unfreeze", r, http.StatusForbidden, "token lacks role operator")
	if !frozen(t, n) {
		t.Fatal("the auditor's write unfroze the cluster")
	}

	ro := cptest.Start(t, cptest.Options{TLS: true})
	b := newAgent(t, ro)
	b.signIn(ro.AdminToken)
	page = b.get("/ui/cluster")
	wantStatus(t, "read-only cluster page", page, http.StatusOK, "changes from the browser are off")
	if strings.Contains(page.body, `action="/ui/freeze"`) {
		t.Fatal("the read-only view shows the brake's form")
	}
	r = b.post("/ui/freeze", url.Values{"frozen": {"on"}, "csrf": {b.csrf("/ui/cluster")}}, ro.URL)
	wantStatus(t, "admin write without --web-writes", r, http.StatusForbidden, "--web-writes")
	if frozen(t, ro) {
		t.Fatal("a write went through without --web-writes")
	}
}

// TestDevCookie: in --dev the API serves plain HTTP, so the cookie cannot
// be Secure (a browser would never send it back) nor use the __Host-
// prefix; everything else holds.
func TestDevCookie(t *testing.T) {
	n := cptest.Start(t, cptest.Options{})
	a := newAgent(t, n)
	r := a.signIn(n.AdminToken)
	wantRedirect(t, "sign-in", r, "/ui/cluster")
	c := r.Cookies()[0]
	if c.Name != "portcullis-session" || c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("--dev session cookie %+v", c)
	}
	wantStatus(t, "cluster page", a.get("/ui/cluster"), http.StatusOK, "--dev")
}

// TestPagesAndCSV: every page renders for an auditor, and the CSV is the
// same as gwctl's.
func TestPagesAndCSV(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true})
	a := newAgent(t, n)
	_, text := newToken(t, n, configv1.Role_ROLE_AUDITOR, time.Hour)
	a.signIn(text)
	for p, title := range map[string]string{
		"/ui/cluster": "Cluster and data planes", "/ui/agents": "Agents", "/ui/upstreams": "Upstreams and tool pins",
		"/ui/policies": "Policy sets", "/ui/audit": "Audit records", "/ui/access": "Who can call a tool?",
	} {
		wantStatus(t, p, a.get(p), http.StatusOK, "<title>"+title+" · Portcullis</title>", `aria-current="page"`)
	}
	wantStatus(t, "unknown page", a.get("/ui/nope"), http.StatusNotFound, "There is no such page")
	wantStatus(t, "bad time filter", a.get("/ui/audit?search=1&from=yesterday"), http.StatusBadRequest, "RFC 3339")
	wantStatus(t, "unknown tool", a.get("/ui/access?tool=nope__x"), http.StatusBadRequest, "nope__x")
	wantStatus(t, "user without a source", a.get("/ui/access?tool=nope__x&user=alice"), http.StatusBadRequest, "SOURCE/NAME")

	// The control plane's own chain has the bootstrap and this sign-in.
	r := a.get("/ui/audit?search=1&dataplane=control-plane")
	wantStatus(t, "audit search", r, http.StatusOK, "sign-in session", `href="/ui/audit.csv?dataplane=control-plane"`)
	r = a.get("/ui/audit.csv?dataplane=control-plane")
	wantStatus(t, "CSV", r, http.StatusOK)
	if ct, cd := r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" || !strings.HasPrefix(cd, "attachment;") {
		t.Fatalf("CSV headers %q, %q", ct, cd)
	}
	rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 3 || !slices.Equal(rows[0], auditcsv.Header) || rows[1][1] != "control-plane" {
		t.Fatalf("CSV rows %q", rows)
	}
}

// TestUpstreamsShowsToolVersions: the tool pins table shows the default
// version and each deprecated version's sunset.
func TestUpstreamsShowsToolVersions(t *testing.T) {
	n := cptest.Start(t, cptest.Options{TLS: true})
	opts := connect.WithInterceptors(bearer(n.AdminToken))
	ctx := context.Background()
	ups := adminv1connect.NewUpstreamServiceClient(n.HTTPClient, n.URL, opts)
	if _, err := ups.CreateUpstream(ctx, connect.NewRequest(&adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "demo"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "http://127.0.0.1:9/",
	}})); err != nil {
		t.Fatal(err)
	}
	tools := adminv1connect.NewToolServiceClient(n.HTTPClient, n.URL, opts)
	for _, def := range []string{`{"name":"get_weather","inputSchema":{"type":"object"}}`, `{"name":"get_weather","description":"v2","inputSchema":{"type":"object"}}`} {
		if _, err := tools.PinTool(ctx, connect.NewRequest(&adminv1.PinToolRequest{Upstream: "demo", Tool: "get_weather", Definition: []byte(def),
			Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY})); err != nil {
			t.Fatal(err)
		}
	}
	sunset := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	if _, err := tools.DeprecateToolVersion(ctx, connect.NewRequest(&adminv1.DeprecateToolVersionRequest{Upstream: "demo", Tool: "get_weather", Version: 1,
		SunsetTime: timestamppb.New(sunset)})); err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, n)
	a.signIn(n.AdminToken)
	wantStatus(t, "upstreams page", a.get("/ui/upstreams"), http.StatusOK, "Default version", `<td class="num">2 of 2</td>`,
		"v1: sunset "+sunset.Format("2006-01-02 15:04:05Z"))
}
