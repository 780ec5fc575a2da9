package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// brokerGateway is the gateway with three upstreams behind one data plane:
// "demo" (stateful, the startGateway one), "tools" (stateful, with the
// streaming tools count and confirm_transfer) and "modern" (stateless,
// 2026-07-28); the last two also serve a resource, a resource template and
// a prompt. Every pin is the upstream's live definition.
func startBrokerGateway(t *testing.T) *gateway {
	t.Helper()
	g, _ := startBrokerGatewayWithTools(t)
	return g
}

// startBrokerGatewayWithTools is startBrokerGateway that also returns the
// "tools" upstream, whose log, wait and ask_briefly tools are pinned too.
func startBrokerGatewayWithTools(t *testing.T) (*gateway, *harness.DemoUpstream) {
	t.Helper()
	g := startGateway(t, 1, "dp1")
	tools := harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{RequireBearer: g.upstreamSecret, Args: []string{"--streaming-tools", "--content"}})
	modern := harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{RequireBearer: g.upstreamSecret, Args: []string{"--stateless", "--content"}})
	g.gwctl(t, "upstream", "add", "tools", "--url", tools.URL, "--bearer-secret", "demo-token")
	g.gwctl(t, "upstream", "add", "modern", "--url", modern.URL, "--bearer-secret", "demo-token")
	g.pinAsServed(t, "tools", tools.URL, "count", "read-only")
	g.pinAsServed(t, "tools", tools.URL, "confirm_transfer", "mutating")
	g.pinAsServed(t, "tools", tools.URL, "log", "read-only")
	g.pinAsServed(t, "tools", tools.URL, "wait", "read-only")
	g.pinAsServed(t, "tools", tools.URL, "ask_briefly", "mutating")
	g.pinAsServed(t, "modern", modern.URL, "get_weather", "read-only")
	version := g.applyPolicy(t, "limits", limitsPolicy)
	awaitVersion(t, g.dps[0], version, 20*time.Second)
	return g, tools
}

// TestGoSDKClientInBothEras: the official Go SDK client talks to the data
// plane in every version of the legacy era (a gateway session; 2025-03-26,
// the oldest still deployed, 2025-06-18 and 2025-11-25) and in 2026-07-28
// (stateless); a stateful and a stateless upstream answer behind it;
// progress arrives over the SSE stream in every version, and an upstream's
// elicitation reaches a 2025-06-18 or 2025-11-25 client and its answer
// goes back (2025-03-26 has no elicitation; a 2026-07-28 client cannot
// answer a legacy upstream). The capabilities the client sees say what the
// gateway sends and what the upstreams behind it offer.
func TestGoSDKClientInBothEras(t *testing.T) {
	g := startBrokerGateway(t)
	dp := g.dps[0]
	for _, version := range []string{"2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var elicited []string
			var progress atomicCount
			client := mcp.NewClient(&mcp.Implementation{Name: "e2e-agent", Version: "1"}, &mcp.ClientOptions{
				ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { progress.add() },
				ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					elicited = append(elicited, req.Params.Message)
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"confirm": true}}, nil
				},
			})
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: dp.URL + "/mcp", HTTPClient: agentHTTPClient(t, g.opsKey)},
				&mcp.ClientSessionOptions{ProtocolVersion: version})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer func() { _ = cs.Close() }()
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				t.Fatalf("negotiated %s, want %s", got, version)
			}
			// What the gateway sends (tools/list_changed on a legacy
			// session's stream or a 2026-07-28 subscriptions/listen), and
			// what the "tools" upstream offers beyond: completions,
			// logging, resource subscriptions.
			caps := cs.InitializeResult().Capabilities
			if caps.Tools == nil || !caps.Tools.ListChanged || caps.Resources == nil || caps.Prompts == nil ||
				caps.Resources.ListChanged || !caps.Resources.Subscribe || caps.Prompts.ListChanged || caps.Completions == nil || caps.Logging == nil {
				t.Errorf("capabilities %+v (tools %+v, resources %+v), want tools with listChanged, resources with subscribe, prompts, completions, logging", caps, caps.Tools, caps.Resources)
			}
			lt, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range lt.Tools {
				names = append(names, tool.Name)
			}
			for _, want := range []string{actionWeather, actionPayment, "tools__count", "tools__confirm_transfer", "modern__get_weather"} {
				if !slices.Contains(names, want) {
					t.Errorf("tools/list %v lacks %s", names, want)
				}
			}
			for _, tool := range []string{actionWeather, "modern__get_weather"} {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"city": "Oslo"}})
				if err != nil || res.IsError {
					t.Fatalf("%s: %v %+v", tool, err, res)
				}
			}

			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "tools__count", Arguments: map[string]any{"steps": 3},
				Meta: mcp.Meta{"progressToken": "e2e-progress"}})
			if err != nil || res.IsError {
				t.Fatalf("count: %v %+v", err, res)
			}
			if got := resultText(res); got != "counted to 3" || progress.get() != 3 {
				t.Errorf("count = %q after %d progress notifications, want 3", got, progress.get())
			}

			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "tools__confirm_transfer", Arguments: map[string]any{"amount": 250}})
			if err != nil {
				t.Fatalf("confirm_transfer: %v", err)
			}
			if version == "2025-06-18" || version == "2025-11-25" {
				if got := resultText(res); got != "transfer of 250 confirmed" || len(elicited) != 1 {
					t.Errorf("legacy elicitation: result %q, asked %v", got, elicited)
				}
			} else if !res.IsError || len(elicited) != 0 {
				// A 2026-07-28 caller cannot answer a legacy upstream's
				// request, and 2025-03-26 has no elicitation: the gateway
				// refuses it, so the tool fails.
				t.Errorf("%s caller, legacy elicitation: result %+v, asked %v; want the upstream's error", version, res, elicited)
			}
		})
	}
}

// TestProgressNotificationsReachTheCaller drives tools/call over raw HTTP
// to see the event stream itself: progress notifications with the
// caller's own token, then the result.
func TestProgressNotificationsReachTheCaller(t *testing.T) {
	g := startBrokerGateway(t)
	dp := g.dps[0]
	body := `{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"name":"tools__count","arguments":{"steps":4},"_meta":{"progressToken":42}}}`
	req, _ := http.NewRequest(http.MethodPost, dp.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.opsKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want an event stream", ct)
	}
	msgs := readEvents(t, resp)
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 4 progress + result: %v", len(msgs), msgs)
	}
	for i, m := range msgs[:4] {
		if !strings.Contains(m, `"notifications/progress"`) || !strings.Contains(m, `"progressToken":42`) || !strings.Contains(m, fmt.Sprintf(`"progress":%d`, i+1)) {
			t.Errorf("message %d = %s, want progress %d for token 42", i, m, i+1)
		}
	}
	if !strings.Contains(msgs[4], `"id":"r1"`) || !strings.Contains(msgs[4], "counted to 4") {
		t.Errorf("last message %s, want the result", msgs[4])
	}
}

// TestModernHeaderRules: through the real data plane, a 2026-07-28
// request whose mirrored headers disagree with its body is refused with
// HTTP 400 and -32020 before anything runs; one that agrees runs.
func TestModernHeaderRules(t *testing.T) {
	g := startBrokerGateway(t)
	dp := g.dps[0]
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__get_weather","arguments":{"city":"Oslo"},` + meta + `}}`
	post := func(headers map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, dp.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+g.opsKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(t, resp))
		return resp.StatusCode, b.String()
	}
	before, err := g.up.Calls()
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]map[string]string{
		"wrong tool name": {"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "demo__send_payment"},
		"wrong method":    {"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list", "Mcp-Name": "demo__get_weather"},
		"no name":         {"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"},
	} {
		status, out := post(h)
		if status != http.StatusBadRequest || !strings.Contains(out, "-32020") {
			t.Errorf("%s: HTTP %d %s, want 400 with -32020", name, status, out)
		}
	}
	after, err := g.up.Calls()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("a request with mismatched headers reached the upstream")
	}
	status, out := post(map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "demo__get_weather"})
	if status != http.StatusOK || !strings.Contains(out, "Oslo") {
		t.Errorf("matching headers: HTTP %d %s", status, out)
	}
}

// TestTypeScriptSDKClient: the official TypeScript SDK (npm, run by Node)
// in the legacy era: the capabilities it is told, a gateway session, tools
// from two upstreams, progress, an elicitation answered by the client, a
// policy refusal, and the methods beyond tools: ping, completion,
// logging/setLevel with the log messages at that level, a resource
// subscription with its update, and a cancelled call that the upstream
// sees cancelled.
func TestTypeScriptSDKClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for this test (Node 20+): %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "tsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("the TypeScript SDK is not installed: run `npm ci --prefix test/tsclient` (make e2e does): %v", err)
	}
	g, tools := startBrokerGatewayWithTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "client.mjs"), g.dps[0].URL+"/mcp", "http://"+tools.Addr)
	cmd.Env = append(os.Environ(), "PORTCULLIS_AGENT_KEY="+g.opsKey)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("tsclient failed: %v\n%s", err, stderr.String())
		}
		t.Fatal(err)
	}
	var got struct {
		SessionID       *string `json:"sessionId"`
		ProtocolVersion *string `json:"protocolVersion"`
		Capabilities    struct {
			Tools *struct {
				ListChanged bool `json:"listChanged"`
			} `json:"tools"`
			Resources   map[string]any `json:"resources"`
			Prompts     map[string]any `json:"prompts"`
			Completions map[string]any `json:"completions"`
			Logging     map[string]any `json:"logging"`
		} `json:"capabilities"`
		Completions  []string `json:"completions"`
		Logs         []string `json:"logs"`
		Updated      []string `json:"updated"`
		Cancelled    bool     `json:"cancelled"`
		Tools        []string `json:"tools"`
		Weather      string   `json:"weather"`
		Progress     []int    `json:"progress"`
		Count        string   `json:"count"`
		Confirm      string   `json:"confirm"`
		Elicitations []string `json:"elicitations"`
		Refused      struct {
			IsError bool   `json:"isError"`
			Reason  string `json:"reason"`
		} `json:"refused"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("tsclient output %q: %v", out, err)
	}
	t.Logf("tsclient: %s", out)
	if got.SessionID == nil || *got.SessionID == "" {
		t.Error("no gateway session")
	}
	if got.ProtocolVersion == nil || *got.ProtocolVersion != "2025-11-25" {
		t.Errorf("protocol version %v, want 2025-11-25", got.ProtocolVersion)
	}
	// The gateway sends tools/list_changed on the session's stream, no
	// resources or prompts list changes, and offers what the "tools"
	// upstream offers: resource subscriptions, completions, logging.
	if c := got.Capabilities; c.Tools == nil || !c.Tools.ListChanged || fmt.Sprint(c.Resources) != "map[subscribe:true]" || c.Prompts == nil || len(c.Prompts) != 0 ||
		c.Completions == nil || c.Logging == nil {
		t.Errorf("capabilities %+v, want tools with listChanged, resources with subscribe, prompts, completions and logging", c)
	}
	if !slices.Equal(got.Completions, []string{"invoices", "interest"}) {
		t.Errorf("completions %v", got.Completions)
	}
	if !slices.Equal(got.Logs, []string{"warning", "error"}) {
		t.Errorf("log messages %v, want those at warning and above", got.Logs)
	}
	if !slices.Equal(got.Updated, []string{"tools__demo://readme"}) {
		t.Errorf("resource updates %v, want the subscribed resource's, namespaced", got.Updated)
	}
	if !got.Cancelled {
		t.Error("the cancelled call was not cancelled")
	}
	harness.Await(t, 20*time.Second, "the upstream to see the cancellation and the unsubscription", func() error {
		s, err := tools.State()
		if err != nil {
			return err
		}
		if s.Cancelled != 1 || len(s.Subscribed) != 0 {
			return fmt.Errorf("upstream state %+v, want 1 cancelled call and no subscription", s)
		}
		return nil
	})
	for _, want := range []string{actionWeather, "tools__count", "tools__confirm_transfer", "modern__get_weather"} {
		if !slices.Contains(got.Tools, want) {
			t.Errorf("tools %v lack %s", got.Tools, want)
		}
	}
	if !strings.Contains(got.Weather, "Oslo") {
		t.Errorf("weather %q", got.Weather)
	}
	if got.Count != "counted to 3" || !slices.Equal(got.Progress, []int{1, 2, 3}) {
		t.Errorf("count %q with progress %v, want 3 steps", got.Count, got.Progress)
	}
	if got.Confirm != "transfer of 250 confirmed" || len(got.Elicitations) != 1 || !strings.Contains(got.Elicitations[0], "250") {
		t.Errorf("confirm %q after elicitations %v", got.Confirm, got.Elicitations)
	}
	if !got.Refused.IsError || got.Refused.Reason != "denied" {
		t.Errorf("payment of 900: %+v, want refused with reason denied", got.Refused)
	}
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCount) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *atomicCount) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// readEvents reads an event-stream answer's data fields.
func readEvents(t *testing.T, resp *http.Response) []string {
	t.Helper()
	r := mcpwire.NewEventReader(resp.Body, 1<<20)
	var out []string
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(ev.Data))
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestResourcesAndPromptsFederated: resources, resource templates and
// prompts of a stateful and a stateless upstream appear under one endpoint,
// namespaced like tools; reads and prompt gets are routed by the prefix,
// answered as the upstream sent them (its errors too) and audited; an
// agent granted no tool of an upstream sees none of its content.
func TestResourcesAndPromptsFederated(t *testing.T) {
	g := startBrokerGateway(t)
	dp := g.dps[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(key string) *mcp.ClientSession {
		t.Helper()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-agent", Version: "1"}, nil).Connect(ctx,
			&mcp.StreamableClientTransport{Endpoint: dp.URL + "/mcp", HTTPClient: agentHTTPClient(t, key)}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.Close() })
		return cs
	}
	cs := connect(g.opsKey)
	if caps := cs.InitializeResult().Capabilities; caps.Resources == nil || caps.Prompts == nil {
		t.Errorf("capabilities %+v, want resources and prompts", caps)
	}
	lr, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range lr.Resources {
		uris = append(uris, r.URI+" "+r.Name)
	}
	if want := []string{"modern__demo://readme modern__readme", "tools__demo://readme tools__readme"}; !slices.Equal(uris, want) {
		t.Errorf("resources %v, want %v", uris, want)
	}
	lt, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.ResourceTemplates) != 2 || lt.ResourceTemplates[0].URITemplate != "modern__demo://invoices/{id}" {
		t.Errorf("templates %+v", lt.ResourceTemplates)
	}
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "tools__demo://readme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Contents) != 1 || rr.Contents[0].URI != "tools__demo://readme" || !strings.Contains(rr.Contents[0].Text, "demo upstream") {
		t.Errorf("read readme: %+v", rr.Contents)
	}
	rr, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "modern__demo://invoices/42"})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, `"42"`) {
		t.Errorf("read invoice 42 from the stateless upstream: %+v %v", rr, err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "tools__demo://invoices/"}); err == nil {
		t.Error("reading a resource the upstream does not have: no error")
	}
	lp, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Prompts) != 2 || lp.Prompts[1].Name != "tools__summarize" {
		t.Errorf("prompts %+v", lp.Prompts)
	}
	gp, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "tools__summarize", Arguments: map[string]string{"topic": "gateways"}})
	if err != nil || len(gp.Messages) != 1 || !strings.Contains(gp.Messages[0].Content.(*mcp.TextContent).Text, "gateways") {
		t.Errorf("get prompt: %+v %v", gp, err)
	}

	// The dev agent is granted no tool of these upstreams: no content.
	dev := connect(g.devKey)
	if lr, err := dev.ListResources(ctx, nil); err != nil || len(lr.Resources) != 0 {
		t.Errorf("dev agent's resources: %+v %v, want none", lr, err)
	}
	if _, err := dev.ReadResource(ctx, &mcp.ReadResourceParams{URI: "tools__demo://readme"}); err == nil || !strings.Contains(err.Error(), "no policy permits") {
		t.Errorf("dev agent reading: %v, want a denial", err)
	}

	records, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	var reads, denied int
	for _, r := range records {
		if r.Method == "resources/read" && r.Upstream == "tools" && r.Tool == "tools__demo://readme" && r.TargetOwn == "demo://readme" {
			if r.Outcome == "ok" {
				reads++
			} else if r.Reason == "denied" {
				denied++
			}
		}
	}
	if reads != 1 || denied != 1 {
		t.Errorf("audit: %d allowed and %d denied reads of tools/demo://readme, want 1 and 1", reads, denied)
	}
	// Lists and handshakes go through the same pipeline and leave records
	// of their own kinds: the ops agent's resources list showed 2 items,
	// the dev agent's none.
	kinds := map[string]int{}
	var opsResources, devResources []int64
	for _, r := range records {
		kinds[r.Kind+" "+r.Method]++
		if r.Kind == "EVENT_KIND_LIST" && r.Method == "resources/list" {
			switch r.Agent {
			case "ops-agent":
				opsResources = append(opsResources, int64(r.Items))
			case "dev-agent":
				devResources = append(devResources, int64(r.Items))
			}
		}
	}
	for _, k := range []string{"EVENT_KIND_SESSION initialize", "EVENT_KIND_LIST resources/templates/list", "EVENT_KIND_LIST prompts/list", "EVENT_KIND_CALL prompts/get"} {
		if kinds[k] == 0 {
			t.Errorf("no audit record of kind and method %q (have %v)", k, kinds)
		}
	}
	if !slices.Equal(opsResources, []int64{2}) || !slices.Equal(devResources, []int64{0}) {
		t.Errorf("resources/list records: ops agent saw %v items, dev agent %v; want [2] and [0]", opsResources, devResources)
	}
}
