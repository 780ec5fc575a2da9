package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// trap is an HTTP listener that records every request it gets: a stand-in
// for a listener an operator controls, or an internal service.
type trap struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string // the Authorization header of each request
}

// newTrap starts a trap answering status with body.
func newTrap(t *testing.T, status int, body string) *trap {
	t.Helper()
	tr := &trap{}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.auths = append(tr.auths, r.Header.Get("Authorization"))
		tr.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(tr.Close)
	return tr
}

func (tr *trap) requests() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.auths...)
}

// hostPort is the host:port of a URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// operatorEnv creates an operator token and returns a gwctl environment
// that uses it.
func operatorEnv(t *testing.T, g *gateway) []string {
	t.Helper()
	var tok struct {
		Secret string `json:"secret"`
	}
	harness.GwctlJSON(t, g.env(), &tok, "token", "create", "--role", "operator", "--ttl", "1h", "--description", "e2e operator")
	return setEnv(g.env(), "GWCTL_TOKEN="+tok.Secret)
}

// wantGwctlFailure runs gwctl, wants it to fail with every want in its
// stderr, and returns the result.
func wantGwctlFailure(t *testing.T, env []string, want []string, args ...string) harness.Result {
	t.Helper()
	r := harness.Gwctl(t, env, append(args, "--timeout", "20s")...)
	if r.OK() {
		t.Fatalf("gwctl %s succeeded, want a failure; stdout:\n%s", strings.Join(args, " "), r.Stdout)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("gwctl %s: stderr %q does not contain %q", strings.Join(args, " "), r.Stderr, w)
		}
	}
	return r
}

// TestSecretsGoOnlyToTheirHosts is issue 11's finding 5 with real
// processes. An operator who can manage upstreams tries to have the
// gateway deliver a secret to a listener of their own: registering an
// upstream there is refused, and so is moving the secret there, directly
// or by replacing its value with a wider binding; an upstream on a bound
// host that redirects to the listener makes neither discovery nor a data
// plane's call follow. The listener never gets a request, so never an
// Authorization header; an admin's binding is on the admin log.
func TestSecretsGoOnlyToTheirHosts(t *testing.T) {
	g := startGateway(t, 1, "dp-bind")
	dp := g.dps[0]
	op := operatorEnv(t, g)
	listener := newTrap(t, http.StatusOK, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	demoHost, listenerHost := hostPort(t, g.up.URL), hostPort(t, listener.URL)
	payValue := "pay_" + randomHex(t, 16)
	payFile := g.writeFile(t, "pay.secret", payValue)

	// The operator stores a secret of their own, bound to the demo upstream.
	harness.MustGwctl(t, op, "secret", "set", "pay-token", "--hosts", demoHost, "--from-file", payFile, "--timeout", "20s")
	wantGwctlFailure(t, op, []string{"needs the hosts"}, "secret", "set", "unbound", "--from-file", payFile)

	// The attacks.
	wantGwctlFailure(t, op, []string{`secret "pay-token" may be sent only to ` + demoHost, listenerHost},
		"upstream", "add", "exfil", "--url", listener.URL+"/mcp", "--bearer-secret", "pay-token")
	wantGwctlFailure(t, op, []string{`secret "demo-token" may be sent only to 127.0.0.1`},
		"upstream", "add", "exfil", "--url", "http://localhost:"+strings.Split(listenerHost, ":")[1]+"/mcp", "--bearer-secret", "demo-token")
	wantGwctlFailure(t, op, []string{"lacks role admin"}, "secret", "bind", "pay-token", "--hosts", listenerHost)
	wantGwctlFailure(t, op, []string{"needs an admin token"},
		"secret", "set", "pay-token", "--hosts", demoHost+","+listenerHost, "--from-file", payFile)
	wantGwctlFailure(t, op, []string{"not_found"}, "upstream", "discover", "exfil")

	// An admin binds the secret to a second host, whose server redirects
	// every request to the listener.
	bouncer := httptest.NewServer(http.RedirectHandler(listener.URL+"/mcp", http.StatusTemporaryRedirect))
	defer bouncer.Close()
	g.gwctl(t, "secret", "bind", "pay-token", "--hosts", demoHost+","+hostPort(t, bouncer.URL))
	harness.MustGwctl(t, op, "upstream", "add", "bouncer", "--url", bouncer.URL+"/mcp", "--bearer-secret", "pay-token", "--timeout", "20s")
	wantGwctlFailure(t, op, []string{`upstream "bouncer" failed`, "HTTP 307"}, "upstream", "discover", "bouncer")

	def := g.writeFile(t, "bouncer-weather.json", weatherDefinition)
	var pin struct {
		Pin revisioned `json:"pin"`
	}
	harness.GwctlJSON(t, op, &pin, "tool", "pin", "--upstream", "bouncer", "--tool", "get_weather", "--definition", def, "--class", "read-only", "--timeout", "20s")
	awaitVersion(t, dp, uint64(pin.Pin.Meta.Revision), 20*time.Second)
	c := mustRefuse(t, dp, g.opsKey, "bouncer__get_weather", weatherArgs("Oslo"), "upstream_unavailable")
	if strings.Contains(c.Text, payValue) {
		t.Errorf("the refusal shows the secret: %q", c.Text)
	}

	if got := listener.requests(); len(got) != 0 {
		t.Fatalf("the listener got %d requests (Authorization %q); it must get none", len(got), got)
	}

	var ev struct {
		Events []struct {
			Method string `json:"method"`
			Name   string `json:"name"`
			Actor  struct {
				Role string `json:"role"`
			} `json:"actor"`
			ErrorCode string `json:"errorCode"`
		} `json:"events"`
	}
	harness.GwctlJSON(t, g.env(), &ev, "admin-log", "--limit", "50")
	bound := false
	for _, e := range ev.Events {
		bound = bound || (e.Method == "SecretService.BindSecret" && e.Name == "pay-token" && e.Actor.Role == "ROLE_ADMIN" && e.ErrorCode == "")
	}
	if !bound {
		t.Errorf("the admin log has no successful SecretService.BindSecret of pay-token by an admin: %+v", ev.Events)
	}
	g.c.MustCleanShutdown(t)
}

// TestDiscoverFailingUpstreamIsNotHammered is issue 11's finding 9 with
// real processes: discovery against an upstream that fails answers with
// the upstream's failure (a short excerpt, no credential) and exits
// non-zero after a bounded number of requests to it, instead of being
// retried on every node until gwctl's timeout ("no control-plane server
// answered").
func TestDiscoverFailingUpstreamIsNotHammered(t *testing.T) {
	c := harness.StartCluster(t, 2)
	env := c.Env()
	secret := "flaky_" + randomHex(t, 16)
	page := "<html><body>upstream is down for maintenance; request had Authorization: Bearer " + secret +
		strings.Repeat(" padding", 200) + "</body></html>"
	flaky := newTrap(t, http.StatusServiceUnavailable, page)
	file := writeTemp(t, secret)
	harness.MustGwctl(t, env, "secret", "set", "flaky-token", "--hosts", hostPort(t, flaky.URL), "--from-file", file, "--timeout", "20s")
	harness.MustGwctl(t, env, "upstream", "add", "flaky", "--url", flaky.URL+"/mcp", "--bearer-secret", "flaky-token", "--timeout", "20s")

	r := harness.Gwctl(t, env, "upstream", "discover", "flaky", "--timeout", "30s")
	if r.OK() {
		t.Fatalf("discover succeeded against a failing upstream:\n%s", r.Stdout)
	}
	for _, want := range []string{`upstream "flaky" failed`, "HTTP 503", "down for maintenance"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr %q lacks %q", r.Stderr, want)
		}
	}
	for _, bad := range []string{"no control-plane server answered", "warning: ", secret} {
		if strings.Contains(r.Stderr, bad) {
			t.Errorf("stderr %q contains %q", r.Stderr, bad)
		}
	}
	// The page is quoted as an excerpt, not whole.
	if n := strings.Count(r.Stderr, "padding"); n > 40 || len(r.Stderr) > 1024 {
		t.Errorf("stderr quotes the upstream's page at length (%d bytes, %d paddings of 200)", len(r.Stderr), n)
	}
	// Era detection asks server/discover, then falls back to initialize:
	// a couple of requests, not one per retry until the timeout.
	if n := len(flaky.requests()); n == 0 || n > 4 {
		t.Errorf("the failing upstream got %d requests, want 1 to 4", n)
	}
	c.MustCleanShutdown(t)
}

// writeTemp writes content to a new 0600 file and returns its path.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := t.TempDir() + "/value"
	writeFile(t, p, content)
	return p
}
