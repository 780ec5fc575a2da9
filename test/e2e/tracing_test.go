package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/portcullis-gw/portcullis/internal/tracing/tracingtest"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestTraceFollowsOneCallAcrossTheHop follows MCP calls from the test's
// agent through a data plane to the demo upstream in an in-process OTLP
// receiver: the agent's client span (exported over OTLP/HTTP), the data
// plane's server span, a span per pipeline stage and the client span of
// the upstream call (the data plane exports over OTLP/gRPC), and the
// upstream's server span (OTLP/HTTP), linked parent to child in one trace.
// The agent sends its trace context in params._meta (SEP-414) on the first
// call and as a traceparent header on the second; a refused call ends in
// the data plane with the stage that refused it named. No attribute of any
// span carries an argument's value.
func TestTraceFollowsOneCallAcrossTheHop(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	g := &gateway{c: harness.StartCluster(t, 1), dir: t.TempDir(), upstreamSecret: "ups_" + randomHex(t, 16)}
	g.up = harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{RequireBearer: g.upstreamSecret,
		Args: []string{"--trace-otlp-endpoint", rcv.HTTPURL()}})
	g.gwctl(t, "secret", "set", "demo-token", "--hosts", "127.0.0.1", "--from-file", g.writeFile(t, "upstream.secret", g.upstreamSecret))
	g.gwctl(t, "upstream", "add", "demo", "--url", g.up.URL, "--bearer-secret", "demo-token")
	g.pin(t, "get_weather", "read-only", weatherDefinition)
	g.opsKey = g.createAgent(t, "ops-agent", "ops")
	g.devKey = g.createAgent(t, "dev-agent", "dev")
	version := g.applyPolicy(t, "ops", opsPolicy)
	// --trace-stage-min 0: every stage gets a span, however little it
	// takes (by default only those that cost anything do).
	dp := g.startDataplane(t, "dp-traced", "--trace-otlp-endpoint", rcv.GRPCURL(), "--trace-otlp-protocol", "grpc", "--trace-stage-min", "0")
	dp.AwaitServing(t, harness.StartTimeout)
	awaitVersion(t, dp, version, 20*time.Second)

	// The agent: its own tracer provider, exporting to the same receiver.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(rcv.HTTPURL()+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(serviceName("e2e-agent"))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	agent := tp.Tracer("e2e-agent")

	// Argument values no span may carry.
	city := "Trondheim-" + randomHex(t, 6)
	denied := "Bergen-" + randomHex(t, 6)
	call := func(key, city string, inMeta bool) (trace.SpanContext, harness.MCPResponse) {
		ctx, span := agent.Start(context.Background(), "tools/call "+actionWeather, trace.WithSpanKind(trace.SpanKindClient))
		defer span.End()
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		params := map[string]any{"name": actionWeather, "arguments": weatherArgs(city)}
		opts := harness.CallOptions{Bearer: key}
		if inMeta {
			params["_meta"] = map[string]any{"traceparent": carrier["traceparent"]}
		} else {
			opts.Header = map[string]string{"traceparent": carrier["traceparent"]}
		}
		resp, err := harness.MCPCallWith(ctx, dp.URL+"/mcp", opts, "tools/call", params)
		if err != nil {
			t.Fatal(err)
		}
		return span.SpanContext(), resp
	}

	viaMeta, resp := call(g.opsKey, city, true)
	if resp.Error != nil || !strings.Contains(string(resp.Result), city) {
		t.Fatalf("tools/call answered %s %v, want the weather of %s", resp.Result, resp.Error, city)
	}
	viaHeader, _ := call(g.opsKey, city, false)
	refused, resp := call(g.devKey, denied, true)
	if !strings.Contains(string(resp.Result), `"isError":true`) {
		t.Fatalf("the dev agent's call answered %s, want a refusal", resp.Result)
	}

	stages := []string{"stage authenticate", "stage audit", "stage gate", "stage authorize", "stage validate"}
	await := func(sc trace.SpanContext, want []string) map[string]tracingtest.Span {
		t.Helper()
		var byName map[string]tracingtest.Span
		harness.Await(t, 30*time.Second, "the spans of trace "+sc.TraceID().String(), func() error {
			byName = map[string]tracingtest.Span{}
			for _, s := range rcv.Trace(sc.TraceID().String()) {
				byName[s.Service+": "+s.Name] = s
			}
			var missing []string
			for _, w := range want {
				if _, ok := byName[w]; !ok {
					missing = append(missing, w)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("missing %q; have %q", missing, sortedKeys(byName))
			}
			return nil
		})
		return byName
	}
	const (
		agentSpan    = "e2e-agent: tools/call " + actionWeather
		serverSpan   = "portcullis-dataplane: tools/call " + actionWeather
		clientSpan   = "portcullis-dataplane: tools/call get_weather"
		upstreamSpan = "demo-upstream: tools/call get_weather"
	)
	want := []string{agentSpan, serverSpan, clientSpan, upstreamSpan}
	for _, s := range stages {
		want = append(want, "portcullis-dataplane: "+s)
	}

	for _, tc := range []struct {
		name string
		sc   trace.SpanContext
	}{{"trace context in params._meta", viaMeta}, {"trace context in the traceparent header", viaHeader}} {
		t.Run(tc.name, func(t *testing.T) {
			spans := await(tc.sc, want)
			agentS, server, client, up := spans[agentSpan], spans[serverSpan], spans[clientSpan], spans[upstreamSpan]
			if agentS.SpanID != tc.sc.SpanID().String() || agentS.Kind != tracev1.Span_SPAN_KIND_CLIENT {
				t.Errorf("agent span %s kind %v, want %s, client", agentS.SpanID, agentS.Kind, tc.sc.SpanID())
			}
			if server.ParentID != agentS.SpanID || server.Kind != tracev1.Span_SPAN_KIND_SERVER {
				t.Errorf("data plane's server span: parent %q, kind %v; want the agent's span %s, server", server.ParentID, server.Kind, agentS.SpanID)
			}
			for i, s := range stages {
				st := spans["portcullis-dataplane: "+s]
				if st.ParentID != server.SpanID {
					t.Errorf("%s is not a child of the server span", s)
				}
				if st.Attributes["portcullis.stage"] != strings.TrimPrefix(s, "stage ") || st.Attributes["portcullis.stage.self_us"] == "" {
					t.Errorf("%s: portcullis.stage = %q, portcullis.stage.self_us = %q", s, st.Attributes["portcullis.stage"], st.Attributes["portcullis.stage.self_us"])
				}
				// The chain as it ran: each stage within the one before it.
				if i > 0 {
					prev := spans["portcullis-dataplane: "+stages[i-1]]
					if st.Start.Before(prev.Start) || st.End.After(prev.End) {
						t.Errorf("%s [%s, %s] is not within %s [%s, %s]", s, st.Start, st.End, stages[i-1], prev.Start, prev.End)
					}
				}
			}
			if client.Kind != tracev1.Span_SPAN_KIND_CLIENT || client.ParentID != server.SpanID {
				t.Errorf("the upstream call's span (kind %v, parent %q) is not a client span under the server span", client.Kind, client.ParentID)
			}
			if up.ParentID != client.SpanID || up.Kind != tracev1.Span_SPAN_KIND_SERVER {
				t.Errorf("the upstream's span: parent %q, kind %v; want the data plane's client span %s, server", up.ParentID, up.Kind, client.SpanID)
			}
			wantAttrs(t, server, map[string]string{
				"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": actionWeather, "mcp.method.name": "tools/call",
				"portcullis.agent": "ops-agent", "portcullis.upstream": "demo", "portcullis.decision": "allow",
				"portcullis.outcome": "ok", "portcullis.mode": "normal", "portcullis.protocol": "mcp",
				"portcullis.config_version": fmt.Sprint(version), "client.address": "127.0.0.1",
			})
			wantAttrs(t, client, map[string]string{
				"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "mcp.method.name": "tools/call",
				"portcullis.upstream": "demo", "portcullis.outcome": "ok", "server.address": "127.0.0.1",
				"server.port": g.up.Addr[strings.LastIndexByte(g.up.Addr, ':')+1:],
			})
			wantAttrs(t, up, map[string]string{"gen_ai.tool.name": "get_weather", "mcp.method.name": "tools/call"})
		})
	}

	t.Run("a refused call", func(t *testing.T) {
		spans := await(refused, []string{agentSpan, serverSpan, "portcullis-dataplane: stage authorize"})
		wantAttrs(t, spans[serverSpan], map[string]string{
			"portcullis.outcome": "refused", "portcullis.refusal.reason": "denied", "error.type": "denied",
			"portcullis.agent": "dev-agent", "portcullis.decision": "deny",
		})
		wantAttrs(t, spans["portcullis-dataplane: stage authorize"], map[string]string{"portcullis.refusal.reason": "denied"})
		for name, s := range spans {
			if s.Service == "demo-upstream" || name == clientSpan {
				t.Errorf("a refused call reached the upstream: span %q", name)
			}
		}
	})

	t.Run("no argument value in any attribute", func(t *testing.T) {
		all := rcv.Spans()
		if len(all) == 0 {
			t.Fatal("no spans received")
		}
		for _, s := range all {
			for k, v := range s.Attributes {
				if strings.Contains(v, city) || strings.Contains(v, denied) {
					t.Errorf("%s: %s: attribute %s = %q carries an argument's value", s.Service, s.Name, k, v)
				}
			}
			if strings.Contains(s.Name, city) || strings.Contains(s.Name, denied) {
				t.Errorf("span name %q carries an argument's value", s.Name)
			}
		}
	})
}

func wantAttrs(t *testing.T, s tracingtest.Span, want map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got, ok := s.Attributes[k]; !ok || got != want[k] {
			t.Errorf("%s: %s: attribute %s = %q (present %t), want %q", s.Service, s.Name, k, got, ok, want[k])
		}
	}
}

func serviceName(name string) attribute.KeyValue { return attribute.String("service.name", name) }
