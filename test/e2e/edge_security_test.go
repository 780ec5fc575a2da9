package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestEdgeSecurity drives the refusals a data plane makes at its edge with
// a real data plane: anonymous floods are counted and audited as one
// summary per source network and interval (not one record each), a request
// with two Authorization headers is refused, and an upstream registered at
// the data plane's own address cannot make a call loop through it.
func TestEdgeSecurity(t *testing.T) {
	g := startGateway(t, 1, "dp-edge")
	dp := g.dps[0]

	t.Run("anonymous flood", func(t *testing.T) {
		const n = 300
		for i := range n {
			key := ""
			if i%2 == 1 {
				key = fmt.Sprintf("pck_%016d_forged", i) // unknown key
			}
			status, _ := rawPost(t, dp.URL+"/mcp", map[string][]string{"Authorization": {"Bearer " + key}},
				`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__get_weather","arguments":{"city":"Oslo"}}}`)
			if status != http.StatusUnauthorized {
				t.Fatalf("anonymous request %d: status %d, want 401", i, status)
			}
		}
		m, err := dp.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		if got := m[`portcullis_dataplane_refusals_total{reason="unauthenticated"}`]; got < n {
			t.Errorf("unauthenticated refusals counted: %v, want ≥ %d", got, n)
		}
		// Within one interval (10 s) and a little: one summary, no record
		// per request.
		var summary harness.AuditRecord
		harness.Await(t, 20*time.Second, "a refusal summary in the audit log", func() error {
			recs, err := dp.AuditRecords()
			if err != nil {
				return err
			}
			var total uint64
			for _, r := range recs {
				if r.Kind == "EVENT_KIND_REFUSAL_SUMMARY" {
					total += r.Count
					summary = r
				} else if r.Agent == "" && r.Reason == "unauthenticated" {
					return fmt.Errorf("an anonymous refusal has a record of its own: %+v", r)
				}
			}
			if total != n {
				return fmt.Errorf("summaries count %d refusals, want %d", total, n)
			}
			return nil
		})
		if summary.SourceNetwork != "127.0.0.0/24" || summary.Reason != "unauthenticated" {
			t.Errorf("summary %+v: want source network 127.0.0.0/24, reason unauthenticated", summary)
		}
	})

	t.Run("duplicate Authorization", func(t *testing.T) {
		status, body := rawPost(t, dp.URL+"/mcp", map[string][]string{"Authorization": {"Bearer " + g.devKey, "Bearer " + g.opsKey}},
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__get_weather","arguments":{"city":"Oslo"}}}`)
		if status != http.StatusBadRequest || !strings.Contains(body, "Authorization appears more than once") {
			t.Fatalf("status %d %s, want 400 naming the duplicated header", status, body)
		}
	})

	t.Run("forwarding loop", func(t *testing.T) {
		// An upstream at the data plane's own endpoint, holding an agent's
		// key as its credential: without loop detection, a call to
		// loop__demo__get_weather would go through the data plane twice.
		keyFile := g.writeFile(t, "loop.secret", g.opsKey)
		g.gwctl(t, "secret", "set", "loop-key", "--from-file", keyFile, "--hosts", "127.0.0.1")
		g.gwctl(t, "upstream", "add", "loop", "--url", dp.URL+"/mcp", "--bearer-secret", "loop-key")
		def := strings.Replace(weatherDefinition, `"name":"get_weather"`, `"name":"demo__get_weather"`, 1)
		file := g.writeFile(t, "loop-weather.json", def)
		var out struct {
			Pin revisioned `json:"pin"`
		}
		harness.GwctlJSON(t, g.env(), &out, "tool", "pin", "--upstream", "loop", "--tool", "demo__get_weather",
			"--definition", file, "--class", "read-only", "--timeout", "20s")
		awaitVersion(t, dp, uint64(out.Pin.Meta.Revision), 20*time.Second)

		// A direct call reaches the upstream marked with this data plane.
		mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
		calls, err := g.up.Calls()
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) == 0 || strings.Join(calls[len(calls)-1].Header["Portcullis-Hop"], ",") != "dp-edge" {
			t.Fatalf("the upstream's last call carries Portcullis-Hop %q, want dp-edge", calls[len(calls)-1].Header["Portcullis-Hop"])
		}
		before := len(calls)
		c, err := dp.CallTool(t.Context(), g.opsKey, "loop__demo__get_weather", weatherArgs("Oslo"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Err() == nil {
			t.Fatalf("a call through the looping upstream succeeded: %+v", c)
		}
		t.Logf("refused: reason %q, %q", c.Reason, c.Text)
		calls, err = g.up.Calls()
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) != before {
			t.Fatalf("the demo upstream saw %d more calls; the loop was not cut", len(calls)-before)
		}
	})
}

// rawPost sends one JSON POST with the given headers (each value its own
// header line) and returns the status and at most 64 KiB of the body.
func rawPost(t *testing.T, url string, headers map[string][]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, vs := range headers {
		for _, v := range vs {
			if strings.TrimSpace(strings.TrimPrefix(v, "Bearer")) != "" {
				req.Header.Add(k, v)
			}
		}
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 64<<10)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, string(b[:n])
}
