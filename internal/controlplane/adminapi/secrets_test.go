package adminapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

// hostOf is the host:port of a URL, as a secret binding entry.
func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func bearerUpstream(name, rawURL, secret string) *configv1.Upstream {
	return &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: name}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: rawURL,
		Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: secret}}},
	}
}

// listener is an HTTP server that records the Authorization header of
// every request it gets and answers 500 with an echo of it.
type listener struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newListener(t *testing.T) *listener {
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.auths = append(l.auths, r.Header.Get("Authorization"))
		l.mu.Unlock()
		http.Error(w, "internal service: you sent Authorization: "+r.Header.Get("Authorization"), http.StatusInternalServerError)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *listener) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.auths)
}

// TestSecretBinding is issue 11's finding 5 at the admin API: a secret goes
// only to the hosts it is bound to; an operator can neither point an
// upstream that uses it elsewhere nor change where it may go; an admin can.
func TestSecretBinding(t *testing.T) {
	n := startNode(t)
	op, _ := n.newToken(t, configv1.Role_ROLE_OPERATOR, time.Hour)
	const good, evil = "127.0.0.1:4443", "127.0.0.2:4444"
	set := func(token string, hosts ...string) (*connect.Response[adminv1.SetSecretResponse], error) {
		return n.secrets.SetSecret(ctx(t), req(token, &adminv1.SetSecretRequest{Name: "tok", Value: []byte("s3cret-value"), Hosts: hosts}))
	}

	_, err := set(op)
	wantCode(t, err, connect.CodeInvalidArgument, "needs the hosts")
	_, err = set(op, "https://api.good.example/")
	wantCode(t, err, connect.CodeInvalidArgument, "not a URL")
	_, err = set(op, "*.good.example")
	wantCode(t, err, connect.CodeInvalidArgument, "wildcards")

	// An operator creates a secret with its binding: the value is theirs.
	res, err := set(op, "127.0.0.1:4443")
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetSecret().GetHosts(); !slices.Equal(got, []string{good}) {
		t.Fatalf("hosts = %v, want [%s]", got, good)
	}
	if _, err := n.upstreams.CreateUpstream(ctx(t), req(op, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("good", "http://"+good+"/mcp", "tok")})); err != nil {
		t.Fatal(err)
	}

	// The exfiltration attempt: an upstream on another host is refused,
	// created or updated.
	_, err = n.upstreams.CreateUpstream(ctx(t), req(op, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("exfil", "http://"+evil+"/mcp", "tok")}))
	wantCode(t, err, connect.CodeFailedPrecondition, `secret "tok" may be sent only to `+good, evil, "gwctl secret bind")
	_, err = n.upstreams.UpdateUpstream(ctx(t), req(op, &adminv1.UpdateUpstreamRequest{Upstream: bearerUpstream("good", "http://"+evil+"/mcp", "tok")}))
	wantCode(t, err, connect.CodeFailedPrecondition, evil)

	// Replacing the value keeps the binding; moving it needs an admin.
	res, err = set(op)
	if err != nil {
		t.Fatalf("replace the value: %v", err)
	}
	if s := res.Msg.GetSecret(); !slices.Equal(s.GetHosts(), []string{good}) || s.GetVersion() != 2 {
		t.Errorf("after a new value: hosts %v version %d, want [%s] 2", s.GetHosts(), s.GetVersion(), good)
	}
	_, err = set(op, good, evil)
	wantCode(t, err, connect.CodePermissionDenied, "needs an admin token")
	_, err = n.secrets.BindSecret(ctx(t), req(op, &adminv1.BindSecretRequest{Name: "tok", Hosts: []string{evil}}))
	wantCode(t, err, connect.CodePermissionDenied, "lacks role admin")

	// An admin cannot strand an upstream that uses the secret…
	_, err = n.secrets.BindSecret(ctx(t), req(n.admin, &adminv1.BindSecretRequest{Name: "tok", Hosts: []string{evil}}))
	wantCode(t, err, connect.CodeFailedPrecondition, `upstream "good" sends secret "tok" to `+good)
	_, err = n.secrets.BindSecret(ctx(t), req(n.admin, &adminv1.BindSecretRequest{Name: "tok"}))
	wantCode(t, err, connect.CodeInvalidArgument, "at least one host")
	// …but may add a host; the value and its version stay.
	b, err := n.secrets.BindSecret(ctx(t), req(n.admin, &adminv1.BindSecretRequest{Name: "tok", Hosts: []string{evil, good}}))
	if err != nil {
		t.Fatal(err)
	}
	if s := b.Msg.GetSecret(); !slices.Equal(s.GetHosts(), []string{good, evil}) || s.GetVersion() != 2 || len(s.GetCiphertext()) != 0 {
		t.Errorf("after bind: hosts %v version %d ciphertext %d bytes", s.GetHosts(), s.GetVersion(), len(s.GetCiphertext()))
	}
	if _, err := n.upstreams.CreateUpstream(ctx(t), req(op, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("second", "http://"+evil+"/mcp", "tok")})); err != nil {
		t.Errorf("an upstream on a newly bound host: %v", err)
	}

	// The binding is an admin write on the record.
	ev := adminEvents(t, n)
	i := slices.IndexFunc(ev, func(e *configv1.AdminEvent) bool {
		return e.GetMethod() == "SecretService.BindSecret" && e.GetErrorCode() == ""
	})
	if i < 0 || ev[i].GetActor().GetRole() != configv1.Role_ROLE_ADMIN || ev[i].GetName() != "tok" {
		t.Errorf("no admin-log event of the binding by an admin: %v", ev)
	}
}

func adminEvents(t *testing.T, n *node) []*configv1.AdminEvent {
	t.Helper()
	c := adminv1connect.NewAdminLogServiceClient(n.hc, n.base)
	res, err := c.ListAdminEvents(ctx(t), req(n.admin, &adminv1.ListAdminEventsRequest{PageSize: 100}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetEvents()
}

// TestLegacySecretImplicitBinding: a secret stored before bindings existed
// (no hosts) goes only to the hosts of the upstreams that use it. The API
// shows them, refuses an upstream that would widen them and refuses to
// let an operator bind it anywhere else; an admin binds it explicitly.
func TestLegacySecretImplicitBinding(t *testing.T) {
	n := startNode(t)
	op, _ := n.newToken(t, configv1.Role_ROLE_OPERATOR, time.Hour)
	// The value sealed for its name, as an older version stored it: set it
	// with a binding, take the ciphertext, and write it again without one
	// through the log, as the older version's command did.
	if _, err := n.secrets.SetSecret(ctx(t), req(n.admin, &adminv1.SetSecretRequest{Name: "old", Value: []byte("legacy-value"), Hosts: []string{"127.0.0.9"}})); err != nil {
		t.Fatal(err)
	}
	r, _ := n.srv.Node().LocalState().Get(resource.Secret, "old")
	sealed := r.GetSecret().GetCiphertext()
	if _, err := n.secrets.DeleteSecret(ctx(t), req(n.admin, &adminv1.DeleteSecretRequest{Name: "old"})); err != nil {
		t.Fatal(err)
	}
	legacyPut := func(m *configv1.Upstream) {
		t.Helper()
		var res *fsmv1.Resource
		if m == nil {
			res = resource.Wrap(&configv1.Secret{Meta: &configv1.ResourceMeta{Name: "old"}, Ciphertext: sealed, Size: 12})
		} else {
			res = resource.Wrap(m)
		}
		out, err := n.srv.Node().Apply(ctx(t), &fsmv1.Command{
			Actor: &configv1.Actor{TokenId: "old-version", Role: configv1.Role_ROLE_OPERATOR}, Method: "legacy",
			Op: &fsmv1.Command_Put{Put: &fsmv1.Put{Resource: res, Mode: fsmv1.WriteMode_WRITE_MODE_CREATE}},
		})
		if err != nil || out.GetError() != nil {
			t.Fatalf("legacy put: %v %v", err, out.GetError())
		}
	}
	legacyPut(nil)
	// Unused, it may go nowhere: an upstream cannot start using it.
	_, err := n.upstreams.CreateUpstream(ctx(t), req(op, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("first", "http://127.0.0.3/mcp", "old")}))
	wantCode(t, err, connect.CodeFailedPrecondition, "no hosts of its own", "goes only where upstreams already send it: no host")
	// Used by an upstream that an older version registered…
	legacyPut(bearerUpstream("a", "http://127.0.0.3/mcp", "old"))
	g, err := n.secrets.GetSecret(ctx(t), req(op, &adminv1.GetSecretRequest{Name: "old"}))
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Msg.GetSecret(); len(s.GetHosts()) != 0 || !slices.Equal(s.GetImplicitHosts(), []string{"127.0.0.3:80"}) {
		t.Errorf("legacy secret: hosts %v implicit %v, want none and [127.0.0.3:80]", s.GetHosts(), s.GetImplicitHosts())
	}
	// …it may serve another upstream on that host, not on another.
	if _, err := n.upstreams.CreateUpstream(ctx(t), req(op, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("a2", "http://127.0.0.3/other", "old")})); err != nil {
		t.Errorf("a second upstream on the same host: %v", err)
	}
	_, err = n.upstreams.CreateUpstream(ctx(t), req(op, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("exfil", "http://127.0.0.4/mcp", "old")}))
	wantCode(t, err, connect.CodeFailedPrecondition, "127.0.0.3", "127.0.0.4", "gwctl secret bind old")
	_, err = n.upstreams.UpdateUpstream(ctx(t), req(op, &adminv1.UpdateUpstreamRequest{Upstream: bearerUpstream("a", "http://127.0.0.4/mcp", "old")}))
	wantCode(t, err, connect.CodeFailedPrecondition, "127.0.0.4")
	// An operator may write down the implicit binding, not another.
	_, err = n.secrets.SetSecret(ctx(t), req(op, &adminv1.SetSecretRequest{Name: "old", Value: []byte("v2"), Hosts: []string{"127.0.0.4"}}))
	wantCode(t, err, connect.CodePermissionDenied)
	if _, err := n.secrets.SetSecret(ctx(t), req(op, &adminv1.SetSecretRequest{Name: "old", Value: []byte("v2"), Hosts: []string{"127.0.0.3:80"}})); err != nil {
		t.Errorf("an operator making the implicit binding explicit: %v", err)
	}
	// From now on the state machine holds it too.
	_, err = n.upstreams.CreateUpstream(ctx(t), req(op, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("exfil", "http://127.0.0.4/mcp", "old")}))
	wantCode(t, err, connect.CodeFailedPrecondition, "may be sent only to 127.0.0.3")
}

// TestDiscoverSendsNoSecretAway: discovery sends the credential only to
// hosts it is bound to, follows no redirect with it, and quotes an
// upstream's error body only as a short excerpt with the credential
// masked.
func TestDiscoverSendsNoSecretAway(t *testing.T) {
	n := startNode(t)
	const secret = "tok-0123456789abcdef"
	trap := newListener(t)
	// The bound upstream answers every request with a redirect to the trap.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, trap.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	echo := newListener(t)
	if _, err := n.secrets.SetSecret(ctx(t), req(n.admin, &adminv1.SetSecretRequest{Name: "tok", Value: []byte(secret),
		Hosts: []string{hostOf(t, redirect.URL), hostOf(t, echo.URL)}})); err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]string{"redirect": redirect.URL + "/mcp", "echo": echo.URL + "/mcp"} {
		if _, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream(name, u, "tok")})); err != nil {
			t.Fatal(err)
		}
	}
	_, err := n.upstreams.DiscoverUpstream(ctx(t), req(n.admin, &adminv1.DiscoverUpstreamRequest{Name: "redirect"}))
	wantCode(t, err, connect.CodeFailedPrecondition, `upstream "redirect" failed`)
	if got := trap.requests(); len(got) != 0 {
		t.Errorf("the redirect target got %d requests (Authorization %q): redirects were followed", len(got), got)
	}

	// An upstream that echoes what it was sent: the answer shows the
	// status and a bounded excerpt, never the credential.
	_, err = n.upstreams.DiscoverUpstream(ctx(t), req(n.admin, &adminv1.DiscoverUpstreamRequest{Name: "echo"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "HTTP 500", "internal service")
	if ce := new(connect.Error); errors.As(err, &ce) && (strings.Contains(ce.Message(), secret) || len(ce.Message()) > 400) {
		t.Errorf("discover's message shows the credential or is unbounded (%d bytes): %q", len(ce.Message()), ce.Message())
	}
	if got := echo.requests(); len(got) == 0 || got[0] != "Bearer "+secret {
		t.Fatalf("the bound upstream got %q, want the credential", got)
	}
}

// TestDiscoverDemoStillWorks is the happy path under a binding with an
// explicit port: the demo upstream's tools come back.
func TestDiscoverDemoStillWorks(t *testing.T) {
	n := startNode(t)
	h := demo.NewHandler(demo.Options{RequireBearer: "demo-secret"})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	if _, err := n.secrets.SetSecret(ctx(t), req(n.admin, &adminv1.SetSecretRequest{Name: "d", Value: []byte("demo-secret"), Hosts: []string{"127.0.0.1"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: bearerUpstream("demo", srv.URL+"/mcp", "d")})); err != nil {
		t.Fatal(err)
	}
	res, err := n.upstreams.DiscoverUpstream(ctx(t), req(n.admin, &adminv1.DiscoverUpstreamRequest{Name: "demo"}))
	if err != nil || len(res.Msg.GetTools()) != 4 {
		t.Fatalf("discover: %v (%d tools)", err, len(res.Msg.GetTools()))
	}
}
