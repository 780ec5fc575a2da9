package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/portcullis-gw/portcullis/internal/auditcsv"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// screenshotsEnv names a directory to save the web view's screenshots in
// (docs/ takes them from there); unset, none are taken.
const screenshotsEnv = "PORTCULLIS_WEBUI_SCREENSHOTS"

// TestWebViewInBrowser drives the control plane's web view in a real
// headless Chromium, over TLS with the cluster's own certificate, on a
// cluster with two data planes and --web-writes: before signing in it
// shows no data; an operator signs in, sees both data planes with their
// versions, searches the audit log and downloads the CSV, asks who can
// call a tool, sees a quarantined pin highlighted, and turns the
// emergency brake on; a write without the CSRF token is refused; an
// auditor sees the same pages but is refused the write by the API. Each
// outcome is checked through gwctl too.
func TestWebViewInBrowser(t *testing.T) {
	harness.Chromium(t) // fail at once, before the cluster starts, when there is no browser
	g := startGatewayWith(t, []string{"--web-writes"}, 1, "dp1", "dp2")
	base := g.c.Nodes[0].URL
	mustCall(t, g.dps[0], g.opsKey, actionWeather, weatherArgs("Oslo"))
	mustRefuse(t, g.dps[1], g.devKey, actionWeather, weatherArgs("Lima"), "denied")
	// A pin that differs from what the upstream lists: dp1's next
	// tools/list quarantines it, and the view must highlight it.
	v := g.pin(t, "list_invoices", "read-only", strings.Replace(invoicesDefinition, "List invoices", "List every invoice", 1))
	awaitVersion(t, g.dps[0], v, 10*time.Second)
	if listed(t, g.dps[0], g.opsKey, actionInvoices) {
		t.Fatal("dp1 lists list_invoices, whose pin differs from the upstream's definition")
	}
	operator := createToken(t, g, "operator")
	auditor := createToken(t, g, "auditor")

	ctx := harness.Browser(t, harness.BrowserOptions{TrustCAFile: g.c.CAFile, Timeout: 90 * time.Second})
	shots := os.Getenv(screenshotsEnv)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	title := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Title())
		if err != nil {
			t.Fatalf("read the title: %v", err)
		}
		return s
	}

	// Before signing in: every page leads to the sign-in form, which
	// shows nothing of the cluster.
	for _, p := range []string{"/ui/cluster", "/ui/audit?search=1", "/ui/audit.csv", "/ui/access?tool=" + actionWeather} {
		do("open "+p+" signed out", chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.ID("token")))
		url, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(url, "/ui/signin") {
			t.Errorf("signed out, %s led to %s, want the sign-in page", p, url)
		}
		body := text("body")
		for _, secret := range []string{"dp1", "dp2", "ops-agent", "demo", g.c.CAFingerprint} {
			if strings.Contains(body, secret) {
				t.Errorf("signed out, %s shows %q:\n%s", p, secret, body)
			}
		}
	}

	// The operator signs in and sees both data planes with the version
	// each serves.
	signIn(t, ctx, base, operator)
	wantVersion := awaitVersion(t, g.dps[0], g.policyVersion, 10*time.Second).Version
	for _, dp := range g.dps {
		sel := chromedp.CSS(fmt.Sprintf(`tr[data-dataplane=%q]`, dp.Name))
		harness.Await(t, 15*time.Second, dp.Name+" on the cluster page with its version", func() error {
			if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/cluster")); err != nil {
				return err
			}
			row, err := chromedp.Run(ctx, chromedp.Text(sel))
			if err != nil {
				return err
			}
			if cells := strings.Fields(row); len(cells) < 2 || cells[0] != dp.Name || cells[1] != fmt.Sprint(wantVersion) {
				return fmt.Errorf("row %q, want %s serving version %d", row, dp.Name, wantVersion)
			}
			return nil
		})
	}
	if got := title(); got != "Cluster and data planes · Portcullis" {
		t.Errorf("title %q", got)
	}
	// The first Tab reaches the skip link, the next ones the navigation.
	var focused []string
	for range 3 {
		do("press Tab", chromedp.KeyEvent(kb.Tab))
		f, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent.trim()`))
		if err != nil {
			t.Fatal(err)
		}
		focused = append(focused, f)
	}
	if !slices.Equal(focused, []string{"Skip to content", "Portcullis", "Cluster"}) {
		t.Errorf("Tab focuses %q, want the skip link, then the navigation", focused)
	}
	screenshot(t, ctx, shots, "cluster")

	// Audit search with gwctl's filters, and the CSV of every match.
	do("search the audit log",
		chromedp.Navigate(base+"/ui/audit"),
		chromedp.SendKeys(chromedp.CSS(`input[name="agent"]`), "ops-agent"),
		chromedp.Click(chromedp.ID("search")),
		chromedp.WaitVisible(chromedp.ID("audit-table")),
	)
	if table := text("#audit-table"); !strings.Contains(table, "ops-agent") || !strings.Contains(table, "dp1") || strings.Contains(table, "dev-agent") {
		t.Errorf("audit results for agent ops-agent:\n%s", table)
	}
	screenshot(t, ctx, shots, "audit")
	rows := downloadCSV(t, ctx, chromedp.ID("csv"))
	if len(rows) < 2 || !slices.Equal(rows[0], auditcsv.Header) {
		t.Fatalf("CSV rows %q: want gwctl's header and at least one record", rows)
	}
	for _, r := range rows[1:] {
		if r[3] != "ops-agent" {
			t.Errorf("CSV row of agent %q, want only ops-agent: %q", r[3], r)
		}
	}

	// Who can call get_weather? The ops agent; not the dev agent.
	do("ask who can call "+actionWeather,
		chromedp.Navigate(base+"/ui/access"),
		chromedp.SendKeys(chromedp.CSS(`input[name="tool"]`), actionWeather),
		chromedp.Click(chromedp.ID("ask")),
		chromedp.WaitVisible(chromedp.ID("who-can")),
	)
	if who := text("#who-can"); !strings.Contains(who, "ops-agent") || strings.Contains(who, "dev-agent") {
		t.Errorf("who can call %s: %q, want ops-agent alone", actionWeather, who)
	}
	screenshot(t, ctx, shots, "access")
	// The quarantined pin stands out, with the data plane that reported
	// it; the others do not.
	harness.Await(t, 15*time.Second, "list_invoices highlighted as quarantined", func() error {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/upstreams"), chromedp.WaitVisible(chromedp.ID("pin-table"))); err != nil {
			return err
		}
		q, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#pin-table tr.quarantined')].map(r => r.dataset.action + ": " + r.innerText)`))
		if err != nil {
			return err
		}
		if len(q) != 1 || !strings.HasPrefix(q[0], actionInvoices+": ") || !strings.Contains(q[0], "QUARANTINED on dp1") {
			return fmt.Errorf("quarantined rows %q, want %s alone, on dp1", q, actionInvoices)
		}
		return nil
	})
	screenshot(t, ctx, shots, "upstreams")

	// The operator turns the emergency brake on.
	do("freeze as operator",
		chromedp.Navigate(base+"/ui/cluster"),
		chromedp.SendKeys(chromedp.ID("reason"), "e2e: web view"),
		chromedp.Click(chromedp.ID("freeze-on")),
		chromedp.WaitVisible(chromedp.ID("frozen")),
	)
	if banner := text("#frozen"); !strings.Contains(banner, "e2e: web view") {
		t.Errorf("frozen banner %q", banner)
	}
	wantFrozen(t, g, true)

	// A write without the CSRF token is refused, even for the operator.
	do("unfreeze without the CSRF token",
		chromedp.Navigate(base+"/ui/cluster"),
		chromedp.WaitVisible(chromedp.ID("freeze-off")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action="/ui/freeze"] input[name="csrf"]').remove()`),
		chromedp.Click(chromedp.ID("freeze-off")),
		chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)),
	)
	if alert, got := text(`[role="alert"]`), title(); !strings.Contains(alert, "CSRF token is missing or wrong") || got != "Forbidden · Portcullis" {
		t.Errorf("a write without the CSRF token: title %q, alert %q", got, alert)
	}
	wantFrozen(t, g, true)

	// The auditor sees the same cluster, with the brake's form disabled;
	// forced open, the API refuses the write.
	do("sign out", chromedp.Navigate(base+"/ui/cluster"), chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)),
		chromedp.WaitVisible(chromedp.ID("token")))
	signIn(t, ctx, base, auditor)
	do("open the cluster page as auditor", chromedp.Navigate(base+"/ui/cluster"), chromedp.WaitVisible(chromedp.CSS(`tr[data-dataplane="dp2"]`)))
	disabled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('freeze-form').disabled`))
	if err != nil {
		t.Fatal(err)
	}
	if !disabled {
		t.Error("the auditor's brake form is enabled, want it disabled")
	}
	do("unfreeze as auditor",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('freeze-form').disabled = false`),
		chromedp.Click(chromedp.ID("freeze-off")),
		chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)),
	)
	if alert, got := text(`[role="alert"]`), title(); !strings.Contains(alert, "token lacks role operator") || got != "Forbidden · Portcullis" {
		t.Errorf("the auditor's write: title %q, alert %q", got, alert)
	}
	wantFrozen(t, g, true)
	do("open policies", chromedp.Navigate(base+"/ui/policies"), chromedp.WaitVisible(chromedp.CSS(`section[data-policy-set="ops"]`)))
	screenshot(t, ctx, shots, "policies")

	// Both sign-ins and the operator's freeze are in the control plane's
	// audit chain.
	r := harness.MustGwctl(t, g.env(), "audit", "query", "--dataplane", "control-plane", "-o", "csv", "--timeout", "20s")
	records, err := csv.NewReader(strings.NewReader(r.Stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rec := range records[1:] {
		seen[rec[3]+" "+rec[8]+" "+rec[11]] = true // agent (the token id), target (op kind/name), outcome
	}
	for _, want := range []string{
		operator.id + " sign-in session/" + operator.id + " ok", auditor.id + " sign-in session/" + auditor.id + " ok",
		operator.id + " freeze cluster/true ok",
	} {
		if !seen[want] {
			t.Errorf("no control-plane audit record %q in:\n%s", want, r.Stdout)
		}
	}
}

// downloadCSV clicks the link sel, waits for the browser to save the
// download, and parses it as CSV.
func downloadCSV(t *testing.T, ctx context.Context, sel chromedp.ID) [][]string {
	t.Helper()
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptr(true),
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	progress := chromedp.BrowserEvents(dctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx, chromedp.Click(sel)); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	var guid string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("the download did not complete: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the browser canceled the download")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			guid = ev.GUID
			break
		}
	}
	f, err := os.Open(filepath.Join(dir, guid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("the download is not CSV: %v", err)
	}
	return rows
}

func ptr[T any](v T) *T { return &v }

// adminToken is a token gwctl created.
type adminToken struct {
	id, secret string
}

func createToken(t *testing.T, g *gateway, role string) adminToken {
	t.Helper()
	var out struct {
		Token struct {
			Meta struct {
				Name string `json:"name"`
			} `json:"meta"`
		} `json:"token"`
		Secret string `json:"secret"`
	}
	harness.GwctlJSON(t, g.env(), &out, "token", "create", "--role", role, "--ttl", "1h", "--description", "e2e web "+role, "--timeout", "20s")
	id := out.Token.Meta.Name
	if id == "" || !strings.HasPrefix(out.Secret, "pct_"+id+"_") {
		t.Fatalf("token create printed id %q and a secret that is not pct_<id>_…", id)
	}
	return adminToken{id: id, secret: out.Secret}
}

// signIn signs in to the view with tok and waits for the cluster page.
func signIn(t *testing.T, ctx context.Context, base string, tok adminToken) {
	t.Helper()
	// By keyboard alone: the token field has the focus, Enter submits.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/signin"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.KeyEvent(tok.secret+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("dataplanes")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".who")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(who, tok.id) {
		t.Fatalf("signed in as %q, want token %s", who, tok.id)
	}
}

// wantFrozen checks through gwctl whether the cluster is frozen.
func wantFrozen(t *testing.T, g *gateway, want bool) {
	t.Helper()
	var out struct {
		Frozen bool `json:"frozen"`
	}
	harness.GwctlJSON(t, g.env(), &out, "dataplane", "list", "--timeout", "20s")
	if out.Frozen != want {
		t.Fatalf("gwctl dataplane list: frozen = %v, want %v", out.Frozen, want)
	}
}

// screenshot saves the page as dir/webui-NAME.png when dir is set.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "webui-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
