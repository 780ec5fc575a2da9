package spans_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/spans"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// stage passes the call on, or refuses it when refuse is set.
type stage struct {
	name   string
	refuse pipeline.Reason
}

func (s stage) Name() string { return s.name }

func (s stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if s.refuse != "" {
		return nil, pipeline.Refuse(s.refuse, "refused by %s", s.name)
	}
	if s.name == "authorize" {
		c.Decision = pipeline.Decision{Allowed: true, Policies: []string{"ops/policy0"}}
	}
	return next(ctx, c)
}

const (
	callerTrace = "0af7651916cd43dd8448eb211c80319c"
	callerSpan  = "b7ad6b7169203331"
	secretArg   = "Trondheim-7f3a9c"
)

func TestSpansOfOneCall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ratio  float64
		parent string
		refuse pipeline.Reason // by the stage "authorize"
		isErr  bool            // the tool answered isError
		min    time.Duration   // the least own time of a stage with a span
		// want: the names of the recorded spans, the server span's parent
		// (hex, "" for a root) and attributes of the server span.
		want       []string
		wantParent string
		wantAttrs  map[string]string
		// forwarded: the upstream call ran in a sampled (true) or
		// unsampled but valid (false) span context.
		forwarded, sampled bool
	}{
		{
			name: "sampled by the caller", ratio: 0, parent: "00-" + callerTrace + "-" + callerSpan + "-01",
			want:       []string{"tools/call demo__get_weather", "stage authenticate", "stage authorize", "stage validate", "tools/call get_weather"},
			wantParent: callerSpan, forwarded: true, sampled: true,
			wantAttrs: map[string]string{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "demo__get_weather",
				"mcp.method.name": "tools/call", "portcullis.agent": "ops-agent", "portcullis.decision": "allow",
				"portcullis.outcome": "ok", "portcullis.policies": `["ops/policy0"]`, "portcullis.upstream": "demo", "client.address": "192.0.2.7"},
		},
		{
			name: "a tool error", ratio: 1, parent: "00-" + callerTrace + "-" + callerSpan + "-01", isErr: true,
			want:       []string{"tools/call demo__get_weather", "stage authenticate", "stage authorize", "stage validate", "tools/call get_weather"},
			wantParent: callerSpan, forwarded: true, sampled: true,
			wantAttrs: map[string]string{"error.type": "tool_error", "portcullis.outcome": "ok"},
		},
		{
			name: "refused by a stage", ratio: 1, refuse: pipeline.ReasonDenied,
			want:      []string{"tools/call demo__get_weather", "stage authenticate", "stage authorize"},
			wantAttrs: map[string]string{"portcullis.outcome": "refused", "portcullis.refusal.reason": "denied", "error.type": "denied", "portcullis.decision": "deny"},
		},
		{
			name: "stages that cost nothing get no span", ratio: 1, min: time.Hour,
			want: []string{"tools/call demo__get_weather", "tools/call get_weather"}, forwarded: true, sampled: true,
		},
		{
			name: "the refusing stage always gets one", ratio: 1, min: time.Hour, refuse: pipeline.ReasonDenied,
			want:      []string{"tools/call demo__get_weather", "stage authorize"},
			wantAttrs: map[string]string{"portcullis.outcome": "refused", "portcullis.refusal.reason": "denied"},
		},
		{
			name: "not sampled by the caller", ratio: 1, parent: "00-" + callerTrace + "-" + callerSpan + "-00",
			forwarded: true, sampled: false,
		},
		{
			name: "started here, not sampled", ratio: 0, forwarded: true, sampled: false,
		},
		{
			name: "a malformed traceparent starts a new trace", ratio: 1, parent: "00-zz-" + callerSpan + "-01",
			want:      []string{"tools/call demo__get_weather", "stage authenticate", "stage authorize", "stage validate", "tools/call get_weather"},
			forwarded: true, sampled: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
				sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.ratio))))
			tr := tp.Tracer(spans.Scope)
			var upstreamCtx trace.SpanContext
			var forwarded bool
			terminal := spans.Forward(tr, func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
				forwarded, upstreamCtx = true, trace.SpanContextFromContext(ctx)
				return &pipeline.Result{Body: json.RawMessage(`{"content":[]}`), IsError: tc.isErr}, nil
			})
			obs := func(string, time.Duration) {}
			h := pipeline.Chain(terminal, append([]pipeline.Stage{spans.Stage{Tracer: tr}},
				pipeline.Traced(obs, tr, tc.min, stage{name: "authenticate"}, stage{name: "authorize", refuse: tc.refuse}, stage{name: "validate"})...)...)
			c := call()
			c.Trace = &pipeline.TraceContext{Parent: tc.parent}
			_, err := h(context.Background(), c)
			if (err != nil) != (tc.refuse != "") {
				t.Fatalf("call: %v", err)
			}
			if forwarded != tc.forwarded {
				t.Fatalf("forwarded %t, want %t", forwarded, tc.forwarded)
			}
			if forwarded && (!upstreamCtx.IsValid() || upstreamCtx.IsSampled() != tc.sampled) {
				t.Errorf("the upstream call's span context: valid %t, sampled %t; want valid, sampled %t", upstreamCtx.IsValid(), upstreamCtx.IsSampled(), tc.sampled)
			}
			ended := rec.Ended()
			var names []string
			byName := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range ended {
				names = append(names, s.Name())
				byName[s.Name()] = s
			}
			if strings.Join(names, ",") != strings.Join(reverse(tc.want), ",") {
				t.Fatalf("spans ended %q, want %q", names, reverse(tc.want))
			}
			if len(tc.want) == 0 {
				return
			}
			server := byName[tc.want[0]]
			if server.SpanKind() != trace.SpanKindServer || server.Parent().SpanID().String() != orZero(tc.wantParent) {
				t.Errorf("server span: kind %v, parent %s; want server, %s", server.SpanKind(), server.Parent().SpanID(), orZero(tc.wantParent))
			}
			if tc.wantParent != "" && server.SpanContext().TraceID().String() != callerTrace {
				t.Errorf("server span in trace %s, want the caller's %s", server.SpanContext().TraceID(), callerTrace)
			}
			if !server.StartTime().Equal(c.Start) {
				t.Errorf("server span starts %s, want the call's start %s", server.StartTime(), c.Start)
			}
			got := attrs(server.Attributes())
			for k, v := range tc.wantAttrs {
				if got[k] != v {
					t.Errorf("server span: %s = %q, want %q", k, got[k], v)
				}
			}
			// Every other span is a child of the server span, the stages'
			// in the order they ran.
			for i := 1; i < len(tc.want); i++ {
				if byName[tc.want[i]].Parent().SpanID() != server.SpanContext().SpanID() {
					t.Errorf("%q is not a child of the server span", tc.want[i])
				}
				if i > 1 && byName[tc.want[i]].StartTime().Before(byName[tc.want[i-1]].StartTime()) {
					t.Errorf("%q starts before %q", tc.want[i], tc.want[i-1])
				}
			}
			for _, name := range tc.want[1:] {
				if st, ok := byName[name]; ok && strings.HasPrefix(name, "stage ") {
					a := attrs(st.Attributes())
					if a["portcullis.stage"] != strings.TrimPrefix(name, "stage ") || a["portcullis.stage.self_us"] == "" {
						t.Errorf("%s: attributes %v, want portcullis.stage and portcullis.stage.self_us", name, a)
					}
				}
			}
			if tc.refuse != "" {
				a := attrs(byName["stage authorize"].Attributes())
				if a["portcullis.refusal.reason"] != string(tc.refuse) {
					t.Errorf("the refusing stage's span: reason %q, want %q", a["portcullis.refusal.reason"], tc.refuse)
				}
				if st, ok := byName["stage authenticate"]; ok {
					if r := attrs(st.Attributes())["portcullis.refusal.reason"]; r != "" {
						t.Errorf("a stage that passed the refusal on names reason %q", r)
					}
				}
			}
			if cl, ok := byName["tools/call get_weather"]; ok {
				a := attrs(cl.Attributes())
				if cl.SpanKind() != trace.SpanKindClient || a["gen_ai.tool.name"] != "get_weather" || a["server.address"] != "127.0.0.1" || a["server.port"] != "7450" {
					t.Errorf("client span: kind %v, attributes %v", cl.SpanKind(), a)
				}
				if tc.isErr != (cl.Status().Code == codes.Error) {
					t.Errorf("client span status %v with isError %t", cl.Status(), tc.isErr)
				}
			}
			for _, s := range ended {
				for k, v := range attrs(s.Attributes()) {
					if strings.Contains(v, secretArg) || strings.Contains(v, "pck_") {
						t.Errorf("%s: attribute %s = %q carries an argument or a credential", s.Name(), k, v)
					}
				}
			}
		})
	}
}

// TestTracedWithoutTracerIsTimed: no tracer, no span, the same chain.
func TestTracedWithoutTracerIsTimed(t *testing.T) {
	var seen []string
	h := pipeline.Chain(func(ctx context.Context, _ *pipeline.Call) (*pipeline.Result, error) {
		if trace.SpanContextFromContext(ctx).IsValid() {
			t.Error("a span context without a tracer")
		}
		return &pipeline.Result{}, nil
	}, pipeline.Traced(func(s string, _ time.Duration) { seen = append(seen, s) }, nil, 0, stage{name: "a"}, stage{name: "b"})...)
	if _, err := h(context.Background(), call()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "b,a" {
		t.Errorf("observed %q, want b,a", seen)
	}
}

// config is the part of the configuration the spans read.
type config struct{ pipeline.Config }

func (config) Version() uint64 { return 42 }

func (config) Upstream(name string) (*configv1.Upstream, bool) {
	return &configv1.Upstream{Url: "http://127.0.0.1:7450/mcp"}, name == "demo"
}

func (config) Secret(string) ([]byte, []string, bool) { return nil, nil, false }

func (config) Egress() egress.Policy { return egress.Policy{} }

var _ upstream.Resolver = config{}

func call() *pipeline.Call {
	return &pipeline.Call{
		Protocol: "mcp", Method: "tools/call", Op: pipeline.OpCall, Start: time.Now().Add(-time.Millisecond),
		Target:     pipeline.Target{Kind: pipeline.KindTool, Name: "demo__get_weather", Upstream: "demo", Own: "get_weather"},
		Arguments:  json.RawMessage(`{"city":"` + secretArg + `"}`),
		Credential: "pck_secret", Config: config{}, SourceIP: netip.MustParseAddr("192.0.2.7"),
		Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "ops-agent"}},
	}
}

func attrs(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func orZero(id string) string {
	if id == "" {
		return trace.SpanID{}.String()
	}
	return id
}

// TestModelCallUsage: a model call is a GenAI "chat" with its token usage
// on both spans, as the target reported it; a remote agent's is
// "invoke_agent".
func TestModelCallUsage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		target    pipeline.Target
		usage     *pipeline.Usage
		wantAttrs map[string]string
		absent    []string
	}{
		{
			name:   "a model call with usage",
			target: pipeline.Target{Kind: pipeline.KindModel, Name: "gpt-mini", Upstream: "demo", Own: "gpt-mini"},
			usage:  &pipeline.Usage{InputTokens: 12, OutputTokens: 34, Model: "gpt-mini-2026-01", Estimated: true},
			wantAttrs: map[string]string{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-mini", "gen_ai.response.model": "gpt-mini-2026-01",
				"gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "34", "portcullis.usage.estimated": "true"},
		},
		{
			name:      "a model call without usage",
			target:    pipeline.Target{Kind: pipeline.KindModel, Name: "gpt-mini", Upstream: "demo", Own: "gpt-mini"},
			wantAttrs: map[string]string{"gen_ai.operation.name": "chat"},
			absent:    []string{"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "portcullis.usage.estimated"},
		},
		{
			name:      "a message to a remote agent",
			target:    pipeline.Target{Kind: pipeline.KindAgent, Name: "helpdesk", Upstream: "demo", Own: "helpdesk"},
			wantAttrs: map[string]string{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helpdesk"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			tr := tp.Tracer(spans.Scope)
			terminal := spans.Forward(tr, func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return &pipeline.Result{Usage: tc.usage}, nil
			})
			h := pipeline.Chain(terminal, spans.Stage{Tracer: tr})
			c := call()
			c.Protocol, c.Method, c.Target, c.Arguments = "llm", "chat.completions", tc.target, nil
			if _, err := h(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			ended := rec.Ended()
			if len(ended) != 2 {
				t.Fatalf("%d spans, want the server and the client span", len(ended))
			}
			for _, s := range ended {
				a := attrs(s.Attributes())
				for k, v := range tc.wantAttrs {
					if a[k] != v {
						t.Errorf("%s: %s = %q, want %q", s.Name(), k, a[k], v)
					}
				}
				for _, k := range tc.absent {
					if _, ok := a[k]; ok {
						t.Errorf("%s: %s present", s.Name(), k)
					}
				}
			}
		})
	}
}
