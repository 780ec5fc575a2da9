package demo

import (
	"context"
	"reflect"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceMiddleware runs every request the server receives in a server span
// named as the OpenTelemetry MCP conventions say ("tools/call get_weather"),
// a child of the trace context in the request's params._meta (SEP-414)
// or, without one there, its traceparent header. Like the gateway, it
// records names and outcomes, never arguments or results.
func traceMiddleware(tr trace.Tracer) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			ctx = propagation.TraceContext{}.Extract(ctx, carrier(req))
			name := method
			attrs := []attribute.KeyValue{attribute.String("mcp.method.name", method)}
			if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok && p != nil {
				name += " " + p.Name
				attrs = append(attrs, attribute.String("gen_ai.tool.name", p.Name), attribute.String("gen_ai.operation.name", "execute_tool"))
			}
			ctx, span := tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
			defer span.End()
			res, err := next(ctx, method, req)
			switch r, _ := res.(*mcp.CallToolResult); {
			case err != nil:
				span.SetAttributes(attribute.String("error.type", "_OTHER"))
				span.SetStatus(codes.Error, "the request failed")
			case r != nil && r.IsError:
				span.SetAttributes(attribute.String("error.type", "tool_error"))
				span.SetStatus(codes.Error, "tool_error")
			}
			return res, err
		}
	}
}

// carrier is where a request's trace context is: params._meta when it
// has a traceparent, else the HTTP headers.
func carrier(req mcp.Request) propagation.TextMapCarrier {
	if p := req.GetParams(); p != nil {
		if v := reflect.ValueOf(p); v.Kind() != reflect.Pointer || !v.IsNil() {
			meta := p.GetMeta()
			if tp, ok := meta["traceparent"].(string); ok {
				c := propagation.MapCarrier{"traceparent": tp}
				if ts, ok := meta["tracestate"].(string); ok {
					c["tracestate"] = ts
				}
				return c
			}
		}
	}
	if x := req.GetExtra(); x != nil && x.Header != nil {
		return propagation.HeaderCarrier(x.Header)
	}
	return propagation.MapCarrier{}
}
