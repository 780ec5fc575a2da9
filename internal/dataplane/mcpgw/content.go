package mcpgw

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// ContentBackend is implemented by a Backend that federates MCP
// resources and prompts. Without it the endpoint offers neither.
type ContentBackend interface {
	// HandleContent runs a resources/read or prompts/get (c.Method) for
	// the upstream in c.Tool.Upstream, with c.Arguments the params as
	// the upstream must see them, through the audited content chain.
	HandleContent(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error)
	// ListContent asks one upstream for one page of a list method.
	ListContent(ctx context.Context, c *pipeline.Call, upstream, method string, params json.RawMessage) (*mcpwire.Message, error)
}

// Bounds on federated lists.
const (
	maxContentPages = 20
	// listTimeout bounds collecting one list from every upstream.
	listTimeout = 10 * time.Second
)

// contentList describes a list method: its result's array member and the
// members of each item that carry a namespaced value.
type contentList struct {
	items  string
	fields []string
}

var contentLists = map[string]contentList{
	"resources/list":           {items: "resources", fields: []string{"uri", "name"}},
	"resources/templates/list": {items: "resourceTemplates", fields: []string{"uriTemplate", "name"}},
	"prompts/list":             {items: "prompts", fields: []string{"name"}},
}

// contentGets are the per-item methods and the params member that names
// the item.
var contentGets = map[string]string{
	"resources/read": "uri",
	"prompts/get":    "name",
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

// route finds the upstream a namespaced value belongs to (the longest
// matching prefix; an unprefixed upstream takes what no prefix matches)
// and the upstream's own value.
func route(ups []pipeline.ContentUpstream, value string) (pipeline.ContentUpstream, string, bool) {
	var best pipeline.ContentUpstream
	found := false
	for _, u := range ups {
		if u.Prefix != "" && strings.HasPrefix(value, u.Prefix+"__") && (!found || len(u.Prefix) > len(best.Prefix)) {
			best, found = u, true
		}
	}
	if found {
		return best, strings.TrimPrefix(value, best.Prefix+"__"), true
	}
	var bare []pipeline.ContentUpstream
	for _, u := range ups {
		if u.Prefix == "" {
			bare = append(bare, u)
		}
	}
	if len(bare) == 1 {
		return bare[0], value, true
	}
	return pipeline.ContentUpstream{}, "", false
}

// contentFor resolves the call's user (as tools/list does) and the
// content authorizer; false when it answered already.
func (h *Handler) contentFor(w http.ResponseWriter, r *http.Request, id json.RawMessage, c *pipeline.Call) (ContentBackend, pipeline.ContentAuthorizer, bool) {
	cb, ok1 := h.backend.(ContentBackend)
	ca, ok2 := c.Config.(pipeline.ContentAuthorizer)
	if !ok1 || !ok2 {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeMethodNotFound, Message: "method not found: this gateway serves no resources or prompts"})
		return nil, nil, false
	}
	if c.UserToken != "" {
		user, refusal := stages.ResolveUser(r.Context(), c.Config, c.UserToken, c.Start)
		if refusal != nil {
			h.unauthorized(w, r, id, true, refusal.Message)
			return nil, nil, false
		}
		c.User = user
	}
	return cb, ca, true
}

// contentListing answers a federated list: every page of every upstream
// the caller is granted, merged into one page, each item's names and URIs
// namespaced. An upstream that fails or has no such list is left out (and
// logged); the others still answer.
func (h *Handler) contentListing(w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, agent *configv1.Agent) {
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
	c.Protocol, c.Method, c.Agent = "mcp", req.Method, agent
	cb, ca, ok := h.contentFor(w, r, id, c)
	if !ok {
		return
	}
	spec := contentLists[req.Method]
	ups := ca.ContentUpstreams(r.Context(), c)
	ctx, cancel := context.WithTimeout(r.Context(), listTimeout)
	defer cancel()
	per := make([][]json.RawMessage, len(ups))
	var wg sync.WaitGroup
	for i, u := range ups {
		wg.Go(func() {
			items, err := h.listOne(ctx, cb, c, u, req.Method, spec)
			if err != nil {
				h.logger.WarnContext(ctx, "upstream left out of a federated list", slog.String("upstream", u.Name), slog.String("method", req.Method), slog.Any("error", err))
				return
			}
			per[i] = items
		})
	}
	wg.Wait()
	all := []json.RawMessage{}
	for _, items := range per {
		all = append(all, items...)
	}
	writeResult(w, id, map[string]any{spec.items: all})
}

// errNoSuchList marks an upstream that does not offer a list method.
var errNoSuchList = errors.New("the upstream does not offer this list")

// listOne walks one upstream's pages of method and namespaces the items.
func (h *Handler) listOne(ctx context.Context, cb ContentBackend, c *pipeline.Call, u pipeline.ContentUpstream, method string, spec contentList) ([]json.RawMessage, error) {
	var out []json.RawMessage
	cursor := ""
	for range maxContentPages {
		params := json.RawMessage(`{}`)
		if cursor != "" {
			b, err := json.Marshal(map[string]string{"cursor": cursor})
			if err != nil {
				return nil, err
			}
			params = b
		}
		m, err := cb.ListContent(ctx, c, u.Name, method, params)
		if err != nil {
			return nil, err
		}
		if m.Kind() == mcpwire.KindError {
			if e, _ := m.ErrorObject(); e != nil && e.Code == codeMethodNotFound {
				return nil, nil // no such capability upstream: nothing to list
			}
			return nil, errNoSuchList
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(m.Result, &page); err != nil {
			return nil, err
		}
		var items []json.RawMessage
		if raw := page[spec.items]; raw != nil {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, err
			}
		}
		for _, item := range items {
			renamed, err := renameFields(item, spec.fields, func(v string) string { return namespaced(u.Prefix, v) })
			if err != nil {
				continue // not an object with string fields: not forwarded
			}
			out = append(out, renamed)
		}
		var next string
		if raw := page["nextCursor"]; raw != nil {
			_ = json.Unmarshal(raw, &next)
		}
		if next == "" || next == cursor {
			return out, nil
		}
		cursor = next
	}
	return out, nil
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

// contentGet answers resources/read or prompts/get: the namespaced URI or
// name is routed to its upstream, which sees its own; the call goes
// through the audited content chain; URIs in the answer are namespaced
// again.
func (h *Handler) contentGet(w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, token string) {
	key := contentGets[req.Method]
	c.Protocol, c.Method, c.Credential = "mcp", req.Method, token
	if len(req.Params) == 0 || !isObject(req.Params) {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: " + key + " is required"})
		return
	}
	raw, err := mcpwire.Find(req.Params, key)
	var value string
	if err != nil || raw == nil || json.Unmarshal(raw, &value) != nil || value == "" {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: " + key + " must be a non-empty string"})
		return
	}
	cb, ca, ok := h.contentFor(w, r, id, c)
	if !ok {
		return
	}
	u, own, ok := route(ca.MCPUpstreams(), value)
	if !ok {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "no upstream serves " + truncate(value, 128) + " (names are <prefix>__<name>)"})
		return
	}
	enc, _ := json.Marshal(own)
	params, err := mcpwire.Set(req.Params, key, enc)
	if err != nil {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params for " + req.Method})
		return
	}
	c.Action, c.Arguments = value, params
	c.Tool = pipeline.Tool{Upstream: u.Name, Name: truncate(own, 256)}
	res, err := cb.HandleContent(r.Context(), c)
	if err != nil {
		ref := pipeline.AsRefusal(err)
		if ref.Reason == pipeline.ReasonUnauthenticated {
			h.unauthorized(w, r, id, true, ref.Message)
			return
		}
		writeError(w, http.StatusOK, id, &rpcError{Code: codeUnavailable, Message: ref.Message, Data: reasonData(ref.Reason)})
		return
	}
	if res.RPCError != nil {
		// The upstream's own error (e.g. resource not found), to our id.
		out, err := json.Marshal(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   json.RawMessage `json:"error"`
		}{"2.0", id, res.RPCError})
		if err != nil {
			writeError(w, http.StatusOK, id, &rpcError{Code: codeUnavailable, Message: "the upstream's error could not be passed on"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		return
	}
	body := res.Body
	if req.Method == "resources/read" {
		body = h.namespaceContents(body, u.Prefix)
	}
	out, err := mcpwire.NewResult(id, body)
	if err != nil {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeUnavailable, Message: "the upstream's answer is not valid JSON"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// namespaceContents namespaces the uri of each item of a resources/read
// result's contents; a result it cannot read is passed on unchanged.
func (h *Handler) namespaceContents(result json.RawMessage, prefix string) json.RawMessage {
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
