package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// breakerOpen is demo2's --breaker-open in TestUpstreamKilledAndRestarted:
// long enough that tools/list right after the failures sees the breaker
// open on a loaded machine, short enough to keep the test quick.
const breakerOpen = 5 * time.Second

// TestUpstreamKilledAndRestarted: two upstreams behind one data plane and
// one agent session (the official Go SDK client). Killing one makes calls
// to it fail fast with a clear reason and drops its tools from tools/list,
// while the other keeps working; restarted on the same address, it comes
// back in the same client session — the agent does nothing special, and
// the gateway re-creates its own session with the upstream.
func TestUpstreamKilledAndRestarted(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	demo2 := harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{RequireBearer: g.upstreamSecret})
	g.gwctl(t, "upstream", "add", "demo2", "--url", demo2.URL, "--bearer-secret", "demo-token",
		"--breaker-failures", "2", "--breaker-open", breakerOpen.String(), "--timeout-per-call", "10s")
	// Pin both get_weathers as served, so a drift check has nothing to
	// quarantine.
	g.pinAsServed(t, "demo", g.up.URL, "get_weather", "read-only")
	version := g.pinAsServed(t, "demo2", demo2.URL, "get_weather", "read-only")
	awaitVersion(t, dp, version, 20*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "resilience-agent", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: dp.URL + "/mcp", HTTPClient: agentHTTPClient(t, g.opsKey), DisableStandaloneSSE: true,
	}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"}) // the legacy era: a gateway session to keep
	if err != nil {
		t.Fatalf("connect to the data plane: %v", err)
	}
	defer func() { _ = cs.Close() }()
	session := cs.ID()
	if session == "" {
		t.Fatal("the gateway minted no session")
	}

	const (
		tool1 = "demo__get_weather"
		tool2 = "demo2__get_weather"
	)
	call := func(tool string) (*mcp.CallToolResult, time.Duration, error) {
		start := time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"city": "Oslo"}})
		return res, time.Since(start), err
	}
	mustWork := func(what, tool string) {
		t.Helper()
		res, _, err := call(tool)
		if err != nil || res.IsError {
			t.Fatalf("%s: call %s: err %v, result %s", what, tool, err, toolText(res))
		}
	}
	mustList := func(what string, want, notWant []string) {
		t.Helper()
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("%s: tools/list: %v", what, err)
		}
		var names []string
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
		}
		for _, n := range want {
			if !slices.Contains(names, n) {
				t.Fatalf("%s: tools/list %v lacks %s", what, names, n)
			}
		}
		for _, n := range notWant {
			if slices.Contains(names, n) {
				t.Fatalf("%s: tools/list %v still has %s", what, names, n)
			}
		}
	}

	mustWork("both up", tool1)
	mustWork("both up", tool2)
	mustList("both up", []string{tool1, tool2}, nil)

	demo2.Kill()
	// Every call to the dead upstream is refused quickly (connection
	// refused, then the open breaker), with a reason naming it; the other
	// upstream's calls are unaffected in between.
	var sawBreaker bool
	for i := range 4 {
		res, took, err := call(tool2)
		if err != nil {
			t.Fatalf("call %d to the dead upstream: a protocol error %v; want a refusal result", i+1, err)
		}
		text := toolText(res)
		if !res.IsError || !strings.Contains(text, `upstream "demo2"`) {
			t.Fatalf("call %d to the dead upstream: isError %v, %q; want a refusal naming demo2", i+1, res.IsError, text)
		}
		if reason := refusalReason(res); reason != "upstream_unavailable" {
			t.Fatalf("call %d to the dead upstream: reason %q, want upstream_unavailable", i+1, reason)
		}
		if took > 3*time.Second {
			t.Errorf("call %d to the dead upstream took %s; want a fast failure", i+1, took)
		}
		sawBreaker = sawBreaker || strings.Contains(text, "consecutive failures")
		t.Logf("call %d to the dead upstream, refused in %s: %s", i+1, took.Round(time.Millisecond), text)
		mustWork("demo2 dead", tool1)
	}
	if !sawBreaker {
		t.Error("no refusal came from the open circuit breaker")
	}
	mustList("demo2 dead", []string{tool1}, []string{tool2})

	demo2.Restart()
	// Back once the breaker lets a trial call through (≤ breakerOpen), in
	// the same client session; the gateway re-creates its own session with
	// the restarted upstream.
	harness.Await(t, breakerOpen+20*time.Second, "demo2 back", func() error {
		res, _, err := call(tool2)
		switch {
		case err != nil:
			return err
		case res.IsError:
			return errors.New(toolText(res))
		}
		return nil
	})
	mustWork("demo2 restarted", tool1)
	mustList("demo2 restarted", []string{tool1, tool2}, nil)
	if cs.ID() != session {
		t.Fatalf("client session changed from %q to %q", session, cs.ID())
	}
	calls, err := demo2.Calls()
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 || calls[len(calls)-1].Tool != "get_weather" || calls[len(calls)-1].Status != http.StatusOK {
		t.Fatalf("the restarted upstream's call log %+v; want the call that brought it back", calls)
	}

	m, err := dp.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"open", "closed"} {
		series := fmt.Sprintf(`portcullis_dataplane_upstream_breaker_transitions_total{state=%q,upstream="demo2"}`, state)
		if m[series] < 1 {
			t.Errorf("%s = %v, want ≥ 1", series, m[series])
		}
	}
	if _, err := dp.Log.AwaitMatch(regexp.MustCompile(`upstream circuit breaker opened.*upstream=demo2`), time.Second, nil); err != nil {
		t.Errorf("the data plane did not warn that demo2's breaker opened: %v", err)
	}
}

// pinAsServed pins tool with its definition as the upstream at url serves
// it now, and returns the config version of the pin.
func (g *gateway) pinAsServed(t *testing.T, upstream, url, tool, class string) uint64 {
	t.Helper()
	def := harness.LiveToolDefinition(t, url, agentHTTPClient(t, g.upstreamSecret), tool)
	file := g.writeFile(t, fmt.Sprintf("%s-%s-%d.json", upstream, tool, time.Now().UnixNano()), string(def))
	var out struct {
		Pin revisioned `json:"pin"`
	}
	harness.GwctlJSON(t, g.env(), &out, "tool", "pin", "--upstream", upstream, "--tool", tool,
		"--definition", file, "--class", class, "--timeout", "20s")
	return uint64(out.Pin.Meta.Revision)
}

// agentHTTPClient sends every request with Authorization: Bearer token.
func agentHTTPClient(t *testing.T, token string) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+token)
		return tr.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// toolText joins a result's text content.
func toolText(res *mcp.CallToolResult) string {
	if res == nil {
		return "<no result>"
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// refusalReason is a refused call's machine-readable reason.
func refusalReason(res *mcp.CallToolResult) string {
	var r struct {
		Reason string `json:"reason"`
	}
	raw, err := json.Marshal(res.Meta["io.portcullis/refusal"])
	if err != nil || json.Unmarshal(raw, &r) != nil {
		return ""
	}
	return r.Reason
}
