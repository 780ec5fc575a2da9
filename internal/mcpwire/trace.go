package mcpwire

import (
	"encoding/json"
	"fmt"
)

// _meta keys of W3C Trace Context (SEP-414, MCP 2026-07-28; the
// OpenTelemetry MCP semantic conventions): unprefixed keys at the top of a
// request's params._meta, with the values of the traceparent and
// tracestate HTTP headers.
const (
	MetaTraceParent = "traceparent"
	MetaTraceState  = "tracestate"
)

// maxTraceValue bounds a trace value read from params._meta (W3C:
// traceparent is 55 bytes; tracestate at most 32 members of ≤ 256 bytes).
const maxTraceValue = 8 << 10

// TraceContext returns the traceparent and tracestate of params._meta
// ("" for a key that is absent, not a string or longer than 8 KiB). It
// does not validate them: the tracer's propagator parses them.
func TraceContext(params json.RawMessage) (parent, state string) {
	if len(params) == 0 || !IsObject(params) {
		return "", ""
	}
	meta, err := Find(params, "_meta")
	if err != nil || meta == nil || !IsObject(meta) {
		return "", ""
	}
	members, err := Members(meta)
	if err != nil {
		return "", ""
	}
	for _, m := range members {
		if m.Key != MetaTraceParent && m.Key != MetaTraceState || m.End-m.Start > maxTraceValue {
			continue
		}
		var v string
		if json.Unmarshal(meta[m.Start:m.End], &v) != nil {
			continue
		}
		if m.Key == MetaTraceParent {
			parent = v
		} else {
			state = v
		}
	}
	return parent, state
}

// WithTraceContext returns params with params._meta's traceparent set to
// parent and tracestate to state (removed when state is empty), every
// other _meta key and every other byte of params kept; empty or null
// params become an object.
func WithTraceContext(params json.RawMessage, parent, state string) (json.RawMessage, error) {
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage(`{}`)
	}
	if !IsObject(params) {
		return nil, fmt.Errorf("params must be an object to carry trace context")
	}
	meta := map[string]json.RawMessage{}
	existing, err := Find(params, "_meta")
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if existing != nil && string(existing) != "null" {
		if err := json.Unmarshal(existing, &meta); err != nil {
			return nil, fmt.Errorf("params._meta must be an object: %w", err)
		}
	}
	p, err := json.Marshal(parent)
	if err != nil {
		return nil, err
	}
	meta[MetaTraceParent] = p
	delete(meta, MetaTraceState)
	if state != "" {
		if meta[MetaTraceState], err = json.Marshal(state); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	return Set(params, "_meta", b)
}
