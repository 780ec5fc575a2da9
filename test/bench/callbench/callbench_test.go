// Package callbench_test holds BenchmarkToolsCall, the allocation figure
// of issue 14: one MCP tools/call through the whole data plane, in one
// process, against the benchmarks' fast upstream (test/bench/fastupstream),
// beside the same call made to that upstream directly. The difference
// between the two is what the data plane itself allocates per call; the
// client's and the upstream's allocations are in both.
//
//	go test -run '^$' -bench BenchmarkToolsCall -benchmem ./test/bench/callbench
//
// test/bench/mcpbench runs it and reports the figures.
package callbench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/server"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"github.com/portcullis-gw/portcullis/internal/tracing"
	"github.com/portcullis-gw/portcullis/internal/tracing/tracingtest"
	"github.com/portcullis-gw/portcullis/test/bench/fastupstream/responder"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

// benchAction is the pinned get_weather as the data plane serves it.
const benchAction = configtest.Upstream + "__" + demo.ToolGetWeather

// BenchmarkToolsCall makes tools/call get_weather {"city":"Oslo"} in one
// MCP session, as test/bench/mcpbench does:
//
//   - direct: to the fast upstream;
//   - dataplane: through a real data plane (server.Start, then a snapshot
//     applied as the control plane would send it: API-key agent, Cedar,
//     the tool pinned with its live definition and hash, asynchronous
//     audit), over HTTP on loopback, to the same upstream.
//
// Everything runs in this process, so a CPU or memory profile of the
// dataplane run holds the data plane's packages beside the client's and
// the upstream's.
func BenchmarkToolsCall(b *testing.B) {
	up, err := responder.New(context.Background(), responder.Options{})
	if err != nil {
		b.Fatal(err)
	}
	upSrv := httptest.NewServer(up)
	b.Cleanup(upSrv.Close)
	upURL := upSrv.URL + "/mcp"

	b.Run("direct", func(b *testing.B) {
		c := newClient(b, upURL, "")
		run(b, c, demo.ToolGetWeather)
	})
	b.Run("dataplane", func(b *testing.B) {
		dp := startDataplane(b, upURL, tracing.Config{})
		c := newClient(b, "http://"+dp.Addr()+"/mcp", configtest.PayerKey)
		run(b, c, benchAction)
	})
	// Tracing on, every call sampled, spans exported over OTLP/HTTP to a
	// receiver in this process that counts and drops them (its decoding
	// allocates in this process too, so the figure errs high).
	b.Run("dataplane-traced", func(b *testing.B) {
		rcv := tracingtest.NewCounter(b)
		dp := startDataplane(b, upURL, tracing.Config{Endpoint: rcv.HTTPURL(), SampleRatio: 1, StageMin: tracing.DefaultStageMin})
		c := newClient(b, "http://"+dp.Addr()+"/mcp", configtest.PayerKey)
		run(b, c, benchAction)
	})
	// Tracing on, no call sampled (the agents send no sampled trace and
	// --trace-sample-ratio is 0): the cost of the spans that are not kept.
	b.Run("dataplane-unsampled", func(b *testing.B) {
		rcv := tracingtest.NewCounter(b)
		dp := startDataplane(b, upURL, tracing.Config{Endpoint: rcv.HTTPURL(), SampleRatio: 0, StageMin: tracing.DefaultStageMin})
		c := newClient(b, "http://"+dp.Addr()+"/mcp", configtest.PayerKey)
		run(b, c, benchAction)
	})
}

// startDataplane starts a data plane serving the fixture snapshot with
// its upstream at upURL and get_weather pinned as upURL lists it.
func startDataplane(b *testing.B, upURL string, traces tracing.Config) *server.Server {
	def := liveDefinition(b, upURL, demo.ToolGetWeather)
	hash, schema, err := toolpin.Hash(def)
	if err != nil {
		b.Fatal(err)
	}
	s := configtest.Snapshot()
	s.VersionTime = timestamppb.Now() // fresh: the mode is normal without a control plane
	s.Upstreams[0].Url = upURL
	s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
		Meta: &configv1.ResourceMeta{Name: configtest.Upstream + "/" + demo.ToolGetWeather}, Upstream: configtest.Upstream, Tool: demo.ToolGetWeather,
		Versions: []*configv1.ToolVersion{{Version: 1, Definition: def, DefinitionHash: hash, InputSchema: schema,
			Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY}},
	})
	dp, err := server.Start(context.Background(), server.Config{
		DataDir: b.TempDir(), ControlPlanes: []string{"http://127.0.0.1:1"}, Dev: true,
		Credential: joincred.Credential{Name: "dp1", Token: "pct_test"},
		Listen:     "127.0.0.1:0", AuditAsync: true, DegradedAfter: time.Hour, Tracing: traces,
		UpstreamHTTP1: true, // as the data plane binary runs by default (--upstream-http1)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dp.Close() })
	if _, err := dp.Apply(context.Background(), configtest.Marshal(b, s)); err != nil {
		b.Fatal(err)
	}
	return dp
}

// liveDefinition is tool's definition as the server at url lists it.
func liveDefinition(b *testing.B, url, tool string) []byte {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c, err := mcpclient.New(mcpclient.Config{URL: url, HTTP: &http.Client{Transport: tr}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	defs, err := c.ListTools(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range defs {
		var head struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(d, &head) == nil && head.Name == tool {
			return d
		}
	}
	b.Fatalf("%s does not list %s", url, tool)
	return nil
}

// client is one MCP session over a keep-alive HTTP/1.1 connection pool.
type client struct {
	b        *testing.B
	http     *http.Client
	endpoint string
	header   http.Header
}

// newClient opens a session (initialize, notifications/initialized); a
// non-empty bearer is sent on every request.
func newClient(b *testing.B, endpoint, bearer string) *client {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	c := &client{b: b, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, endpoint: endpoint, header: http.Header{}}
	if bearer != "" {
		c.header.Set("Authorization", "Bearer "+bearer)
	}
	resp, got := c.post([]byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`))
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("initialize: %s %s", resp.Status, got)
	}
	c.header.Set("Mcp-Session-Id", resp.Header.Get("Mcp-Session-Id"))
	c.header.Set("MCP-Protocol-Version", "2025-06-18")
	if resp, got := c.post([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); resp.StatusCode != http.StatusAccepted {
		b.Fatalf("notifications/initialized: %s %s", resp.Status, got)
	}
	return c
}

func (c *client) post(body []byte) (*http.Response, []byte) {
	req, err := http.NewRequest(http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		c.b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.b.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		c.b.Fatal(err)
	}
	return resp, got
}

// run calls tool once to open what opens lazily (the data plane's
// upstream session), then b.N times, measured.
func run(b *testing.B, c *client, tool string) {
	call := func(id int) {
		body := make([]byte, 0, 160)
		body = append(body, `{"jsonrpc":"2.0","id":`...)
		body = strconv.AppendInt(body, int64(id), 10)
		body = append(body, `,"method":"tools/call","params":{"name":"`+tool+`","arguments":{"city":"Oslo"}}}`...)
		resp, got := c.post(body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(got, []byte(`"result"`)) || bytes.Contains(got, []byte(`"isError":true`)) {
			b.Fatalf("tools/call: %s %s", resp.Status, got)
		}
		if !strings.Contains(string(got), "Oslo: sunny") {
			b.Fatalf("tools/call answered %s", got)
		}
	}
	call(0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	id := 0
	for b.Loop() {
		id++
		call(id)
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
}

// processCPU is the CPU time (user and system) this process has used:
// the client's, the upstream's and, on the data plane path, the data
// plane's; the data plane's own share is the difference between the two
// paths.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
