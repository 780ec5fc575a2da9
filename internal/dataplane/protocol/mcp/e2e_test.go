package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const upstreamSecret = "upstream-only-secret"

// bearerTransport adds a fixed bearer token to every request.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func sdkClient(t *testing.T, token string) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: bearerTransport{token: token, base: tr}}
}

// pinDemoTools reads the demo upstream's tools the way an operator pins
// them: definitions verbatim, classes by the operator.
func pinDemoTools(ctx context.Context, t *testing.T, url string) []pipeline.Tool {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "pinner", Version: "0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: sdkClient(t, upstreamSecret), DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("connect to the demo upstream: %v", err)
	}
	defer func() { _ = cs.Close() }()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("list the demo's tools: %v", err)
	}
	readOnly := map[string]bool{demo.ToolGetWeather: true, demo.ToolListInvoices: true}
	var tools []pipeline.Tool
	for _, tool := range res.Tools {
		def, err := json.Marshal(tool)
		if err != nil {
			t.Fatalf("encode %s: %v", tool.Name, err)
		}
		var schema struct {
			Required []string `json:"required"`
		}
		raw, _ := json.Marshal(tool.InputSchema)
		_ = json.Unmarshal(raw, &schema)
		class := configv1.ToolClass_TOOL_CLASS_MUTATING
		if readOnly[tool.Name] {
			class = configv1.ToolClass_TOOL_CLASS_READ_ONLY
		}
		tools = append(tools, pipeline.Tool{
			Action: "demo__" + tool.Name, Upstream: "demo", Name: tool.Name, Class: class, Version: 1, Definition: def,
			ValidateArguments: requireFields(schema.Required),
		})
	}
	return tools
}

// requireFields is a stand-in for schema validation: every required field
// must be present.
func requireFields(required []string) func(any) error {
	return func(args any) error {
		m, _ := args.(map[string]any)
		for _, f := range required {
			if _, ok := m[f]; !ok {
				return fmt.Errorf("%s is required", f)
			}
		}
		return nil
	}
}

// TestEndToEndWithSDKClient: the official Go SDK client, in the legacy
// era (a session) and the 2026-07-28 era (stateless, discovered), against
// the gateway in front of a real demo upstream.
func TestEndToEndWithSDKClient(t *testing.T) {
	t.Run("legacy", func(t *testing.T) { endToEndWithSDKClient(t, "2025-11-25") })
	t.Run("modern", func(t *testing.T) { endToEndWithSDKClient(t, "2026-07-28") })
}

func endToEndWithSDKClient(t *testing.T, version string) {
	modern := version == "2026-07-28"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// The upstream accepts only its own secret.
	up := demo.NewHandler(demo.Options{RequireBearer: upstreamSecret})
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	defer up.Close()

	resolver := upstreamtest.NewResolver()
	resolver.SetUpstream(upstreamtest.MCP("demo", upSrv.URL+"/mcp", "demo-token"))
	resolver.SetSecret("demo-token", []byte(upstreamSecret), "127.0.0.1")
	pool := mcpgw.NewPool(testLogger(t))
	defer func() { _ = pool.Close() }()

	cfg := newFakeConfig(pinDemoTools(ctx, t, upSrv.URL+"/mcp")...)
	backend := &fakeBackend{cfg: cfg, mode: configsyncv1.Mode_MODE_NORMAL,
		terminal: func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
			if c.Target.Own == demo.ToolSendPayment {
				return nil, pipeline.Refuse(pipeline.ReasonDenied, "policy payments/no-payments forbids %s", c.Target.Name)
			}
			body, isErr, err := pool.CallTool(ctx, resolver, mcpgw.ToolCall{Upstream: c.Target.Upstream, Tool: c.Target.Own, Class: c.Target.Tool.Class, Arguments: c.Arguments})
			if err != nil {
				return nil, err
			}
			return &pipeline.Result{Body: body, IsError: isErr}, nil
		}}
	gw := httptest.NewServer(mcpgw.NewHandler(backend, testLogger(t)))
	defer gw.Close()

	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: gw.URL + "/mcp", HTTPClient: sdkClient(t, aliceKey)}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect to the gateway: %v", err)
	}
	defer func() { _ = cs.Close() }()
	if v := cs.InitializeResult().ProtocolVersion; v != version {
		t.Errorf("negotiated %s, want %s", v, version)
	}
	if (cs.ID() == "") != modern {
		t.Errorf("session id %q in era %s", cs.ID(), version)
	}

	// tools/list: the pinned tools under their action names, read-only
	// as the operator classified them.
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	listed := map[string]bool{}
	for _, tool := range lt.Tools {
		listed[tool.Name] = tool.Annotations != nil && tool.Annotations.ReadOnlyHint
		if tool.Description == "" || tool.InputSchema == nil {
			t.Errorf("tool %s listed without description or schema", tool.Name)
		}
	}
	want := map[string]bool{"demo__get_weather": true, "demo__list_invoices": true, "demo__create_invoice": false, "demo__send_payment": false}
	if fmt.Sprint(listed) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", listed, want)
	}

	// A read-only tool goes through to the upstream.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__get_weather", Arguments: map[string]any{"city": "Oslo"}})
	if err != nil || res.IsError {
		t.Fatalf("get_weather: %v %+v", err, res)
	}
	if sc, _ := res.StructuredContent.(map[string]any); sc["city"] != "Oslo" {
		t.Fatalf("get_weather structured content %v", res.StructuredContent)
	}

	// A refused call is an isError result with the machine-readable reason.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__send_payment", Arguments: map[string]any{"to": "mallory", "amount": 1}})
	if err != nil || !res.IsError || refusalReason(res) != string(pipeline.ReasonDenied) {
		t.Fatalf("send_payment: err %v, result %+v; want isError with reason denied", err, res)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; !strings.Contains(text, "no-payments") {
		t.Fatalf("refusal text %q", text)
	}

	// Invalid arguments are refused before the upstream.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__get_weather", Arguments: map[string]any{}})
	if err != nil || !res.IsError || refusalReason(res) != string(pipeline.ReasonInvalidArguments) {
		t.Fatalf("get_weather without city: err %v, result %+v; want isError invalid_arguments", err, res)
	}

	// An unknown tool is a JSON-RPC error.
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__nope", Arguments: map[string]any{}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("unknown tool: err %v, want JSON-RPC -32602", err)
	}

	// The upstream saw exactly the one allowed call, with its own
	// credential, and nothing of the caller's.
	calls := up.Calls()
	if len(calls) != 1 || calls[0].Tool != demo.ToolGetWeather || string(calls[0].Arguments) != `{"city":"Oslo"}` {
		t.Fatalf("upstream calls %+v, want only get_weather(Oslo)", calls)
	}
	if calls[0].Authorization != "Bearer "+upstreamSecret {
		t.Fatalf("upstream got Authorization %q, want its own secret", calls[0].Authorization)
	}
	for name, vs := range calls[0].Header {
		for _, v := range vs {
			if strings.Contains(v, aliceKey) || strings.Contains(v, "SECRET") {
				t.Fatalf("the caller's key reached the upstream in %s", name)
			}
		}
	}

	if modern {
		return // no session to end
	}
	// Ending the session over DELETE works, and the session is then gone.
	sid := cs.ID()
	if err := cs.Close(); err != nil {
		t.Fatalf("close session: %v", err)
	}
	hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	hr.Header.Set("Mcp-Session-Id", sid)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := sdkClient(t, aliceKey).Do(hr)
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("ping on a closed session: %d, want 404", resp.StatusCode)
	}
}

func refusalReason(res *mcp.CallToolResult) string {
	m, _ := res.Meta["io.portcullis/refusal"].(map[string]any)
	s, _ := m["reason"].(string)
	return s
}
