// Package spans makes the data plane's OpenTelemetry spans of a call: the
// server span every call runs in (Stage, first in the pipeline) and the
// client span of its upstream call (Forward, around the terminal handler);
// pipeline.Traced adds a span for each stage that cost anything. The server span
// continues the caller's trace (pipeline.Call.Trace); the client span's
// context is what the upstream layer sends on (traceparent in the HTTP
// headers, and MCP's params._meta), so the upstream's own span is its
// child.
//
// Attributes follow the OpenTelemetry semantic conventions for GenAI and
// MCP (gen_ai.operation.name, gen_ai.tool.name, gen_ai.prompt.name,
// gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens
// and output_tokens where the target reports usage, gen_ai.agent.name,
// mcp.method.name, error.type, client.address, server.address,
// server.port) plus Portcullis's own under portcullis.*
// (agent, upstream, decision, policies, config version, mode, outcome,
// refusal reason). They never carry a call's arguments or results, a
// credential, a user token, a resource URI (which can hold identifiers the
// caller chose) or the MCP session id (which lets its holder speak in the
// session): a trace backend is read by more people than the audit log.
package spans

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
)

// Scope is the instrumentation scope of the data plane's spans.
const Scope = "github.com/portcullis-gw/portcullis/dataplane"

// Attribute keys.
const (
	// OpenTelemetry semantic conventions (GenAI, MCP, general).
	KeyOperation    = attribute.Key("gen_ai.operation.name")
	KeyTool         = attribute.Key("gen_ai.tool.name")
	KeyPrompt       = attribute.Key("gen_ai.prompt.name")
	KeyModel        = attribute.Key("gen_ai.request.model")
	KeyRespModel    = attribute.Key("gen_ai.response.model")
	KeyInputTokens  = attribute.Key("gen_ai.usage.input_tokens")
	KeyOutputTokens = attribute.Key("gen_ai.usage.output_tokens")
	KeyAgentName    = attribute.Key("gen_ai.agent.name")
	KeyMCPMethod    = attribute.Key("mcp.method.name")
	KeyErrorType    = attribute.Key("error.type")
	KeyClientAddr   = attribute.Key("client.address")
	KeyServerAddr   = attribute.Key("server.address")
	KeyServerPort   = attribute.Key("server.port")
	KeyNetTransport = attribute.Key("network.transport")
	KeyNetProtocol  = attribute.Key("network.protocol.name")

	// Portcullis's own.
	KeyProtocol      = attribute.Key("portcullis.protocol")
	KeyOp            = attribute.Key("portcullis.operation")
	KeyTargetKind    = attribute.Key("portcullis.target.kind")
	KeyAgent         = attribute.Key("portcullis.agent")
	KeyUpstream      = attribute.Key("portcullis.upstream")
	KeyDecision      = attribute.Key("portcullis.decision")
	KeyPolicies      = attribute.Key("portcullis.policies")
	KeyConfigVersion = attribute.Key("portcullis.config_version")
	KeyMode          = attribute.Key("portcullis.mode")
	KeyOutcome       = attribute.Key("portcullis.outcome")
	KeyReason        = attribute.Key("portcullis.refusal.reason")
	KeyEstimated     = attribute.Key("portcullis.usage.estimated")
)

// gen_ai.operation.name of a tool call, a model call and a message to a
// remote agent.
const (
	opExecuteTool = "execute_tool"
	opChat        = "chat"
	opInvokeAgent = "invoke_agent"
)

// Stage is the first stage of the pipeline: it runs the rest of the call
// in the call's server span. It is not timed (its cost is the tracing
// line of the budget, measured as a whole).
type Stage struct {
	Tracer trace.Tracer
}

var _ pipeline.Stage = Stage{}

// Name implements pipeline.Stage.
func (Stage) Name() string { return "trace" }

// Handle implements pipeline.Stage.
func (s Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	ctx = Continue(ctx, c.Trace)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	if !c.Start.IsZero() {
		opts = append(opts, trace.WithTimestamp(c.Start))
	}
	ctx, span := s.Tracer.Start(ctx, spanName(c.Method, c.Target.Kind, c.Target.Name), opts...)
	res, err := next(ctx, c)
	if span.IsRecording() {
		// One SetAttributes call: the SDK grows the span's attributes on
		// each.
		attrs := serverAttributes(c)
		var ref *pipeline.Refusal
		switch {
		case c.Decision.Allowed:
			attrs = append(attrs, KeyDecision.String("allow"))
		case errors.As(err, &ref) && ref.Reason == pipeline.ReasonDenied:
			attrs = append(attrs, KeyDecision.String("deny"))
		}
		attrs = end(span, attrs, c.Target.Kind, res, err)
		span.SetAttributes(attrs...)
	}
	span.End()
	return res, err
}

// Continue returns ctx carrying the caller's trace context as the remote
// parent of the next span; ctx unchanged when tc names none (or a
// malformed one: the next span starts a new trace).
func Continue(ctx context.Context, tc *pipeline.TraceContext) context.Context {
	if tc == nil || tc.Parent == "" {
		return ctx
	}
	carrier := propagation.MapCarrier{"traceparent": tc.Parent}
	if tc.State != "" {
		carrier["tracestate"] = tc.State
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}

// Forward wraps the terminal handler in the call's client span: the
// upstream call as one operation (retries and a re-created session
// included), named for the upstream's own name of the target.
func Forward(tr trace.Tracer, h pipeline.Handler) pipeline.Handler {
	return func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		if !trace.SpanFromContext(ctx).IsRecording() {
			return h(ctx, c)
		}
		ctx, span := tr.Start(ctx, spanName(c.Method, c.Target.Kind, c.Target.Own), trace.WithSpanKind(trace.SpanKindClient))
		res, err := h(ctx, c)
		span.SetAttributes(end(span, clientAttributes(c), c.Target.Kind, res, err)...)
		span.End()
		return res, err
	}
}

// spanName follows the MCP conventions: "{method} {target}" where the
// target is a tool, prompt or model name (low cardinality), else
// "{method}". Resource URIs stay out (high cardinality, and they can hold
// identifiers).
func spanName(method string, kind pipeline.Kind, target string) string {
	if method == "" {
		method = "call"
	}
	switch kind {
	case pipeline.KindTool, pipeline.KindPrompt, pipeline.KindModel, pipeline.KindSkill:
		if target != "" {
			return method + " " + target
		}
	}
	return method
}

// common are the attributes of both spans that name what was asked.
func common(c *pipeline.Call, target string) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, 24)
	out = append(out, KeyProtocol.String(c.Protocol), KeyOp.String(string(c.Op)))
	if c.Protocol == "mcp" && c.Method != "" {
		out = append(out, KeyMCPMethod.String(c.Method))
	}
	if c.Target.Kind != "" {
		out = append(out, KeyTargetKind.String(string(c.Target.Kind)))
	}
	switch c.Target.Kind {
	case pipeline.KindTool:
		if c.Op == pipeline.OpCall {
			out = append(out, KeyOperation.String(opExecuteTool))
		}
		if target != "" {
			out = append(out, KeyTool.String(target))
		}
	case pipeline.KindPrompt:
		if target != "" {
			out = append(out, KeyPrompt.String(target))
		}
	case pipeline.KindModel:
		if c.Op == pipeline.OpCall {
			out = append(out, KeyOperation.String(opChat))
		}
		if target != "" {
			out = append(out, KeyModel.String(target))
		}
	case pipeline.KindAgent, pipeline.KindSkill:
		if c.Op == pipeline.OpCall {
			out = append(out, KeyOperation.String(opInvokeAgent))
		}
		if c.Target.Kind == pipeline.KindAgent && target != "" {
			out = append(out, KeyAgentName.String(target))
		}
	}
	if c.Target.Upstream != "" {
		out = append(out, KeyUpstream.String(c.Target.Upstream))
	}
	return out
}

// serverAttributes describe the call as the data plane decided it.
func serverAttributes(c *pipeline.Call) []attribute.KeyValue {
	out := common(c, c.Target.Name)
	out = append(out, KeyNetTransport.String("tcp"), KeyNetProtocol.String("http"))
	if c.SourceIP.IsValid() {
		out = append(out, KeyClientAddr.String(c.SourceIP.String()))
	}
	if c.Agent != nil {
		out = append(out, KeyAgent.String(c.Agent.GetMeta().GetName()))
	}
	if c.Config != nil {
		out = append(out, KeyConfigVersion.Int64(int64(c.Config.Version())))
	}
	out = append(out, KeyMode.String(pipeline.ModeName(c.Mode)))
	if len(c.Decision.Policies) > 0 {
		out = append(out, KeyPolicies.StringSlice(c.Decision.Policies))
	}
	return out
}

// clientAttributes describe the upstream call.
func clientAttributes(c *pipeline.Call) []attribute.KeyValue {
	out := common(c, c.Target.Own)
	if host, port := upstreamAddr(c); host != "" {
		out = append(out, KeyServerAddr.String(host))
		if port > 0 {
			out = append(out, KeyServerPort.Int(port))
		}
	}
	return out
}

// upstreamAddr is the host and port of the call's upstream, from the
// configuration ("" when unknown).
func upstreamAddr(c *pipeline.Call) (string, int) {
	r, ok := c.Config.(upstream.Resolver)
	if !ok || c.Target.Upstream == "" {
		return "", 0
	}
	up, ok := r.Upstream(c.Target.Upstream)
	if !ok {
		return "", 0
	}
	u, err := url.Parse(up.GetUrl())
	if err != nil || u.Host == "" {
		return "", 0
	}
	host, p := u.Hostname(), u.Port()
	if p == "" {
		p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	port, _ := strconv.Atoi(p)
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return host, port
}

// end appends to attrs how the operation ended: outcome, refusal reason
// and error.type (a tool's own error: tool_error, and the target's error
// for other operations: upstream_error; a refusal: its reason; anything
// else: _OTHER), and sets the span's status for an error.
func end(span trace.Span, attrs []attribute.KeyValue, kind pipeline.Kind, res *pipeline.Result, err error) []attribute.KeyValue {
	var ref *pipeline.Refusal
	switch {
	case err != nil && errors.As(err, &ref):
		attrs = append(attrs, KeyOutcome.String("refused"), KeyReason.String(string(ref.Reason)), KeyErrorType.String(string(ref.Reason)))
		if ref.Reason == pipeline.ReasonInternal || ref.Reason == pipeline.ReasonUpstreamUnavailable ||
			ref.Reason == pipeline.ReasonUpstreamTimeout || ref.Reason == pipeline.ReasonAuditUnavailable {
			span.SetStatus(codes.Error, string(ref.Reason))
		}
	case err != nil:
		attrs = append(attrs, KeyOutcome.String("error"), KeyErrorType.String("_OTHER"))
		span.SetStatus(codes.Error, "the call failed")
	case res != nil && res.IsError:
		et := "upstream_error"
		if kind == pipeline.KindTool {
			et = "tool_error"
		}
		attrs = append(attrs, KeyOutcome.String("ok"), KeyErrorType.String(et))
		span.SetStatus(codes.Error, et)
	default:
		attrs = append(attrs, KeyOutcome.String("ok"))
	}
	if res != nil && res.Usage != nil {
		u := res.Usage
		attrs = append(attrs, KeyInputTokens.Int64(u.InputTokens), KeyOutputTokens.Int64(u.OutputTokens))
		if u.Model != "" {
			attrs = append(attrs, KeyRespModel.String(u.Model))
		}
		if u.Estimated {
			attrs = append(attrs, KeyEstimated.Bool(true))
		}
	}
	return attrs
}
