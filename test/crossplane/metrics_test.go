package crossplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	dpserver "github.com/portcullis-gw/portcullis/internal/dataplane/server"
)

const (
	metricsDoc = "../../docs/observability.md"
	dashboard  = "../../deploy/grafana/portcullis.json"
)

// TestMetricsOfBothPlanes runs a control-plane node and a data plane
// joined to it, and holds the metrics to what docs/observability.md and
// the Grafana dashboard say: every metric either plane registers is in the
// table under its plane and nothing else is; the control plane's /metrics
// wants an auditor token and reports the data plane with its config lag;
// the data plane's reports its audit upload lag.
func TestMetricsOfBothPlanes(t *testing.T) {
	cp := cptest.Start(t, cptest.Options{})
	dp, err := dpserver.Start(context.Background(), dpserver.Config{
		DataDir: t.TempDir(), ControlPlanes: []string{cp.URL}, Dev: true,
		Credential: joinCredential(t, cp, "dp-metrics"), Listen: "127.0.0.1:0",
		// Registers the OTLP export's counters (nothing is sent: no call).
		AuditOTLPEndpoint: "http://127.0.0.1:1/v1/logs",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dp.Close() })

	documented := readMetricsTable(t)
	for _, plane := range []struct {
		name       string
		registered []string
	}{
		{"control plane", cp.Server.MetricNames()},
		{"data plane", dp.MetricNames()},
	} {
		var want []string
		for name, p := range documented {
			if p == plane.name {
				want = append(want, name)
			}
		}
		slices.Sort(want)
		for _, n := range plane.registered {
			if !slices.Contains(want, n) {
				t.Errorf("the %s registers %s, which %s does not document", plane.name, n, metricsDoc)
			}
		}
		for _, n := range want {
			if !slices.Contains(plane.registered, n) {
				t.Errorf("%s documents %s for the %s, which does not register it", metricsDoc, n, plane.name)
			}
		}
	}

	// The control plane's /metrics: an auditor token or better.
	scrape := func(url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := cp.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"an unknown token", "pat_nothing_here", http.StatusUnauthorized},
		{"a data plane's token", joinCredential(t, cp, "dp-other").Token, http.StatusForbidden},
		{"the admin token", cp.AdminToken, http.StatusOK},
	} {
		t.Run("control plane /metrics with "+tc.name, func(t *testing.T) {
			if code, body := scrape(cp.URL+"/metrics", tc.token); code != tc.want {
				t.Errorf("status %d, want %d: %s", code, tc.want, body)
			}
		})
	}
	// Once the data plane serves the node's version, the node reports it
	// connected and current.
	await(t, 30*time.Second, "the control plane reports dp-metrics connected and current", func() error {
		_, body := scrape(cp.URL+"/metrics", cp.AdminToken)
		for _, want := range []string{
			`portcullis_controlplane_dataplane_connected{dataplane="dp-metrics"} 1`,
			`portcullis_controlplane_dataplane_config_lag{dataplane="dp-metrics"} 0`,
			"portcullis_controlplane_leader 1",
			"portcullis_controlplane_ready 1",
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("no %q in\n%s", want, grepPortcullis(body))
			}
		}
		return nil
	})
	code, body := scrape("http://"+dp.Addr()+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("data plane /metrics: %d", code)
	}
	for _, want := range []string{"portcullis_dataplane_audit_upload_lag_records ", "portcullis_dataplane_audit_upload_lag_seconds "} {
		if !strings.Contains(body, want) {
			t.Errorf("data plane /metrics has no %s", want)
		}
	}
}

// TestDashboardQueriesDocumentedMetrics holds the Grafana dashboard to
// the metrics table: each query names only documented metrics (a
// histogram's _bucket, _sum and _count series included), the panels cover
// what an operator looks at first, and the JSON is what Grafana imports.
func TestDashboardQueriesDocumentedMetrics(t *testing.T) {
	documented := readMetricsTable(t)
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title")
	}
	var exprs []string
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	queried := map[string]bool{}
	name := regexp.MustCompile(`\bportcullis_[a-z0-9_]+`)
	for _, e := range exprs {
		if !balanced(e) {
			t.Errorf("unbalanced brackets in %s", e)
		}
		for _, n := range name.FindAllString(e, -1) {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && documented[b] != "" {
					base = b
				}
			}
			if documented[base] == "" {
				t.Errorf("the dashboard queries %s, which %s does not document (%s)", n, metricsDoc, e)
			}
			queried[base] = true
		}
	}
	// What issue 23 asks the dashboard to show.
	for _, m := range []string{
		"portcullis_dataplane_calls_total",                        // calls
		"portcullis_dataplane_refusals_total",                     // refusals by reason
		"portcullis_dataplane_stage_seconds",                      // added latency
		"portcullis_dataplane_upstream_breaker_transitions_total", // upstream health
		"portcullis_controlplane_dataplane_config_lag",            // config lag per data plane
		"portcullis_dataplane_audit_upload_lag_seconds",           // audit upload lag
		"portcullis_controlplane_rollout_stage",                   // rollout stage
	} {
		if !queried[m] {
			t.Errorf("no panel of the dashboard queries %s", m)
		}
	}
}

// readMetricsTable returns the metrics of the table in metricsDoc, each
// with its plane ("data plane" or "control plane").
func readMetricsTable(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(portcullis_[a-z0-9_]+)` \\| (data plane|control plane) \\|")
	out := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		if out[m[1]] != "" {
			t.Errorf("%s documents %s twice", metricsDoc, m[1])
		}
		out[m[1]] = m[2]
	}
	if len(out) == 0 {
		t.Fatalf("no metrics table in %s", metricsDoc)
	}
	return out
}

// balanced reports whether (), [] and {} nest properly in a query
// (outside double-quoted strings).
func balanced(s string) bool {
	var stack []rune
	inString := false
	for i, r := range s {
		switch {
		case inString:
			if r == '"' && (i == 0 || s[i-1] != '\\') {
				inString = false
			}
		case r == '"':
			inString = true
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case r == ')' || r == ']' || r == '}':
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}

func grepPortcullis(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "portcullis_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
