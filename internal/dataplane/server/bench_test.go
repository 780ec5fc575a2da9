package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

// The call BenchmarkToolsCall makes, as test/bench/mcpbench does: the demo
// upstream's get_weather, pinned read-only, permitted to payer's team.
const (
	benchUpstreamSecret = "bench-upstream-secret"
	benchAction         = configtest.Upstream + "__" + demo.ToolGetWeather
	benchToolDef        = `{"name":"get_weather","description":"Current weather for a city.",
 "inputSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}`
	benchSchema = `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`
)

// BenchmarkToolsCall drives tools/call through a real data plane (Start,
// then a snapshot applied as the control plane would send it) over HTTP on
// loopback to the demo upstream, in one MCP session with an API key and
// asynchronous audit. The upstream runs in this process, so a CPU profile
// holds its cost too: read the data plane's packages in it.
func BenchmarkToolsCall(b *testing.B) {
	up := demo.NewHandler(demo.Options{RequireBearer: benchUpstreamSecret})
	upSrv := httptest.NewServer(up)
	b.Cleanup(upSrv.Close)
	b.Cleanup(up.Close)

	s := configtest.Snapshot()
	s.VersionTime = timestamppb.Now() // fresh: the mode is normal without a control plane
	s.Upstreams[0].Url = upSrv.URL + "/mcp"
	s.Secrets[0].Value = []byte(benchUpstreamSecret)
	s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
		Meta: &configv1.ResourceMeta{Name: configtest.Upstream + "/" + demo.ToolGetWeather}, Upstream: configtest.Upstream, Tool: demo.ToolGetWeather,
		Versions: []*configv1.ToolVersion{{Version: 1, Definition: []byte(benchToolDef), InputSchema: []byte(benchSchema),
			Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY}},
	})
	dp, err := Start(context.Background(), Config{
		DataDir: b.TempDir(), ControlPlanes: []string{"http://127.0.0.1:1"}, Dev: true,
		Credential: joincred.Credential{Name: "dp1", Token: "pct_test"},
		Listen:     "127.0.0.1:0", AuditAsync: true, DegradedAfter: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dp.Close() })
	if _, err := dp.Apply(context.Background(), configtest.Marshal(b, s)); err != nil {
		b.Fatal(err)
	}

	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	endpoint := "http://" + dp.Addr() + "/mcp"
	header := http.Header{}
	post := func(body string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+configtest.PayerKey)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		return resp, string(got)
	}
	resp, got := post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("initialize: %s %s", resp.Status, got)
	}
	header.Set("Mcp-Session-Id", resp.Header.Get("Mcp-Session-Id"))
	header.Set("MCP-Protocol-Version", "2025-06-18")
	if resp, got := post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		b.Fatalf("notifications/initialized: %s %s", resp.Status, got)
	}
	call := func(id int) {
		var body bytes.Buffer
		body.WriteString(`{"jsonrpc":"2.0","id":`)
		body.WriteString(strconv.Itoa(id))
		body.WriteString(`,"method":"tools/call","params":{"name":"` + benchAction + `","arguments":{"city":"Oslo"}}}`)
		resp, got := post(body.String())
		if resp.StatusCode != http.StatusOK || !strings.Contains(got, `"result"`) || strings.Contains(got, `"isError":true`) {
			b.Fatalf("tools/call: %s %s", resp.Status, got)
		}
	}
	call(0) // the upstream session opens on the first call
	b.ReportAllocs()
	b.ResetTimer()
	id := 0
	for b.Loop() {
		id++
		call(id)
	}
}
