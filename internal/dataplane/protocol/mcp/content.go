package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// contentGets are the per-item methods, the params member that names the
// item, and the operation and kind they are to the pipeline.
var contentGets = map[string]struct {
	key  string
	op   pipeline.Operation
	kind pipeline.Kind
}{
	"resources/read": {"uri", pipeline.OpRead, pipeline.KindResource},
	"prompts/get":    {"name", pipeline.OpGet, pipeline.KindPrompt},
}

// contentListKinds are the kinds the content lists list.
var contentListKinds = map[string]pipeline.Kind{
	"resources/list":           pipeline.KindResource,
	"resources/templates/list": pipeline.KindResource,
	"prompts/list":             pipeline.KindPrompt,
}

// namespaced is "<prefix>__<value>", or value for an upstream without a
// prefix: the way tool names are federated, applied to resource URIs and
// prompt names.
func namespaced(prefix, value string) string {
	if prefix == "" {
		return value
	}
	return prefix + "__" + value
}

// routeName finds the upstream a namespaced value belongs to (the longest
// matching prefix; an unprefixed upstream takes what no prefix matches)
// and the upstream's own value.
func routeName(ups []pipeline.Upstream, value string) (pipeline.Upstream, string, bool) {
	var best pipeline.Upstream
	found := false
	for _, u := range ups {
		if u.Prefix != "" && strings.HasPrefix(value, u.Prefix+"__") && (!found || len(u.Prefix) > len(best.Prefix)) {
			best, found = u, true
		}
	}
	if found {
		return best, strings.TrimPrefix(value, best.Prefix+"__"), true
	}
	var bare []pipeline.Upstream
	for _, u := range ups {
		if u.Prefix == "" {
			bare = append(bare, u)
		}
	}
	if len(bare) == 1 {
		return bare[0], value, true
	}
	return pipeline.Upstream{}, "", false
}

// renameFields rewrites the string members fields of object item with f,
// keeping every other byte.
func renameFields(item json.RawMessage, fields []string, f func(string) string) (json.RawMessage, error) {
	out := []byte(item)
	for _, field := range fields {
		raw, err := mcpwire.Find(out, field)
		if err != nil {
			return nil, err
		}
		if raw == nil {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		enc, err := json.Marshal(f(v))
		if err != nil {
			return nil, err
		}
		if out, err = mcpwire.Set(out, field, enc); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// contentListing answers a federated list (resources, resource templates,
// prompts) through the pipeline: Authorize picks the upstreams whose
// content the caller may use, the forwarder collects and namespaces their
// items.
func (h *Handler) contentListing(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call) {
	var p struct {
		Cursor string `json:"cursor"`
	}
	if !decodeParams(w, req, id, &p) {
		return
	}
	if p.Cursor != "" {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: unknown cursor"})
		return
	}
	c.Op, c.Target = pipeline.OpList, pipeline.Target{Kind: contentListKinds[req.Method]}
	res, err := h.backend.Run(ctx, c)
	if err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	out, err := mcpwire.NewResult(id, res.Body)
	if err != nil {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeUnavailable, Message: "the list could not be encoded"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out) //nolint:gosec // a JSON-RPC answer the gateway encoded, sent as application/json, never HTML
}

// contentGet answers resources/read or prompts/get: the namespaced URI or
// name is routed to its upstream, which sees its own; the call goes
// through the pipeline; URIs in the answer are namespaced again.
func (h *Handler) contentGet(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call) {
	spec := contentGets[req.Method]
	rt, e := route(c, req.Params, []string{spec.key})
	if e != nil {
		writeError(w, http.StatusOK, id, e)
		return
	}
	c.Op, c.Target, c.Arguments = spec.op, rt.target(spec.kind), rt.params
	res, err := h.backend.Run(ctx, c)
	if err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	var transform func(json.RawMessage) json.RawMessage
	if req.Method == "resources/read" {
		transform = func(body json.RawMessage) json.RawMessage { return namespaceContents(body, rt.upstream.Prefix) }
	}
	answerUpstream(w, id, res, transform)
}

// writeFailure answers a refused request (other than tools/call, whose
// refusals are tool results) with a JSON-RPC error carrying the reason; an
// unauthenticated one (a refused user token) with the 401 challenge.
func (h *Handler) writeFailure(w http.ResponseWriter, r *http.Request, id json.RawMessage, err error) {
	ref := h.logged(r, err)
	switch ref.Reason {
	case pipeline.ReasonUnauthenticated:
		h.unauthorized(w, r, id, true, ref.Message)
	case pipeline.ReasonNoConfig, pipeline.ReasonStale:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, id, &rpcError{Code: codeUnavailable, Message: ref.Message, Data: reasonData(ref.Reason)})
	default:
		writeError(w, http.StatusOK, id, &rpcError{Code: codeUnavailable, Message: ref.Message, Data: reasonData(ref.Reason)})
	}
}

// namespaceContents namespaces the uri of each item of a resources/read
// result's contents; a result it cannot read is passed on unchanged.
func namespaceContents(result json.RawMessage, prefix string) json.RawMessage {
	if prefix == "" {
		return result
	}
	raw, err := mcpwire.Find(result, "contents")
	if err != nil || raw == nil {
		return result
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return result
	}
	for i, item := range items {
		if renamed, err := renameFields(item, []string{"uri"}, func(v string) string { return namespaced(prefix, v) }); err == nil {
			items[i] = renamed
		}
	}
	enc, err := json.Marshal(items)
	if err != nil {
		return result
	}
	out, err := mcpwire.Set(result, "contents", enc)
	if err != nil {
		return result
	}
	return out
}
