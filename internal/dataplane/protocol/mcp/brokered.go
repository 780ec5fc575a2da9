package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// This file brokers the methods beyond tools, lists, reads and prompt
// gets: completion/complete, logging/setLevel, resources/subscribe and
// resources/unsubscribe (legacy era), and subscriptions/listen (the
// 2026-07-28 era's way to follow resources and the tool list).

// findPath returns the value at path (member keys) inside object b, nil
// when a member on the way is absent.
func findPath(b []byte, path []string) (json.RawMessage, error) {
	v := json.RawMessage(b)
	for _, key := range path {
		if !isObject(v) {
			return nil, nil
		}
		var err error
		if v, err = mcpwire.Find(v, key); err != nil || v == nil {
			return nil, err
		}
	}
	return v, nil
}

// routed is a request whose params name a namespaced prompt or resource:
// the name as the caller gave it, its upstream, the upstream's own name,
// and the params to send the upstream.
type routed struct {
	name     string
	upstream pipeline.Upstream
	own      string
	params   json.RawMessage
}

// route routes the namespaced name at path in params to its upstream:
// params get the upstream's own name there, and lose the caller's _meta
// (what the gateway sends upstream is its own: progress tokens, protocol
// metadata). The error is the JSON-RPC error to answer with.
func route(c *pipeline.Call, params json.RawMessage, path []string) (routed, *rpcError) {
	key := path[len(path)-1]
	if len(params) == 0 || !isObject(params) {
		return routed{}, &rpcError{Code: codeInvalidParams, Message: "invalid params: " + key + " is required"}
	}
	raw, err := findPath(params, path)
	var value string
	if err != nil || raw == nil || json.Unmarshal(raw, &value) != nil || value == "" {
		return routed{}, &rpcError{Code: codeInvalidParams, Message: "invalid params: " + key + " must be a non-empty string"}
	}
	u, own, ok := routeName(c.Config.Upstreams(Name), value)
	if !ok {
		return routed{}, &rpcError{Code: codeInvalidParams, Message: "no upstream serves " + truncate(value, 128) + " (names are <prefix>__<name>)"}
	}
	enc, _ := json.Marshal(own)
	out, err := mcpwire.SetPath(params, path, enc)
	if err == nil {
		out, err = deleteMember(out, "_meta")
	}
	if err != nil {
		return routed{}, &rpcError{Code: codeInvalidParams, Message: "invalid params"}
	}
	return routed{name: value, upstream: u, own: own, params: out}, nil
}

// target is the pipeline target of a routed request.
func (rt routed) target(kind pipeline.Kind) pipeline.Target {
	return pipeline.Target{Kind: kind, Name: rt.name, Upstream: rt.upstream.Name, Own: truncate(rt.own, 256)}
}

// answerUpstream answers a routed request with the upstream's answer:
// its own error to our id, or its result, passed through transform when
// set.
func answerUpstream(w http.ResponseWriter, id json.RawMessage, res *pipeline.Result, transform func(json.RawMessage) json.RawMessage) {
	if res.Failure != nil {
		out, err := json.Marshal(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   json.RawMessage `json:"error"`
		}{"2.0", id, res.Failure})
		if err != nil {
			writeError(w, http.StatusOK, id, &rpcError{Code: codeUnavailable, Message: "the upstream's error could not be passed on"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		return
	}
	body := res.Body
	if transform != nil {
		body = transform(body)
	}
	out, err := mcpwire.NewResult(id, body)
	if err != nil {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeUnavailable, Message: "the upstream's answer is not valid JSON"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out) //nolint:gosec // a JSON-RPC answer the gateway encoded, sent as application/json, never HTML
}

// complete answers completion/complete: the reference (a prompt by name,
// a resource template by URI, both namespaced) is routed to its upstream,
// which sees its own; the request goes through the pipeline as a complete
// of that prompt or resource; the upstream's answer (its suggestions, or
// its error) is passed on as it sent it.
func (h *Handler) complete(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call) {
	var p struct {
		Ref struct {
			Type string `json:"type"`
		} `json:"ref"`
	}
	if !decodeParams(w, req, id, &p) {
		return
	}
	var (
		path []string
		kind pipeline.Kind
	)
	switch p.Ref.Type {
	case "ref/prompt":
		path, kind = []string{"ref", "name"}, pipeline.KindPrompt
	case "ref/resource":
		path, kind = []string{"ref", "uri"}, pipeline.KindResource
	default:
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: `invalid params: ref.type must be "ref/prompt" or "ref/resource"`})
		return
	}
	rt, e := route(c, req.Params, path)
	if e != nil {
		writeError(w, http.StatusOK, id, e)
		return
	}
	c.Op, c.Target, c.Arguments = pipeline.OpComplete, rt.target(kind), rt.params
	res, err := h.backend.Run(ctx, c)
	if err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	answerUpstream(w, id, res, nil)
}

// setLevel answers logging/setLevel (legacy era): the level is kept with
// the caller's session, and the log messages relayed to that session's
// calls are those at or above it (none before it is set). It is a session
// request (audited as such) and reaches no upstream: one upstream session
// serves every caller, so the gateway asks each upstream for all its logs
// and passes each caller what it asked for.
func (h *Handler) setLevel(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, cl caller) {
	var p struct {
		Level string `json:"level"`
	}
	if !decodeParams(w, req, id, &p) {
		return
	}
	rank := mcpwire.LogLevelRank(p.Level)
	if rank == 0 {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams,
			Message: "invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency"})
		return
	}
	if cl.session == "" {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidRequest,
			Message: "logging/setLevel needs a session: initialize first (the level is kept with the session)"})
		return
	}
	c.Op = pipeline.OpSession
	if _, err := h.backend.Run(ctx, c); err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	if !h.sessions.setLogLevel(cl.session, c.Agent.GetMeta().GetName(), rank) {
		sessionNotFound(w)
		return
	}
	writeResult(w, id, struct{}{})
}

// subscribe answers resources/subscribe and resources/unsubscribe (legacy
// era): the namespaced URI is routed to its upstream; the request goes
// through the pipeline as a subscribe (or unsubscribe) of that resource,
// for the caller's session; the upstream's notifications/resources/updated
// then reach that session, and it alone, on its GET stream, under the
// URI it subscribed by. The subscription ends when the caller
// unsubscribes or its session ends.
func (h *Handler) subscribe(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, cl caller) {
	rt, e := route(c, req.Params, []string{"uri"})
	if e != nil {
		writeError(w, http.StatusOK, id, e)
		return
	}
	if cl.session == "" {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidRequest,
			Message: req.Method + " needs a session: initialize first (updates arrive on the session's GET stream)"})
		return
	}
	c.Op = pipeline.OpSubscribe
	if req.Method == "resources/unsubscribe" {
		c.Op = pipeline.OpUnsubscribe
	}
	c.Target, c.Arguments = rt.target(pipeline.KindResource), rt.params
	session := cl.session
	c.Relay = &pipeline.Relay{
		Notify: func(msg []byte) error {
			if !h.sessions.alive(session) {
				return ErrSubscriberGone
			}
			h.listeners.send(session, msg)
			return nil
		},
		Wire: &callWire{subscriber: session},
	}
	res, err := h.backend.Run(ctx, c)
	if err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	answerUpstream(w, id, res, nil)
}

// listens numbers subscriptions/listen streams (their subscriber keys).
var listens atomic.Int64

// listenFilter is the notifications filter of subscriptions/listen.
type listenFilter struct {
	ToolsListChanged      bool     `json:"toolsListChanged,omitempty"`
	PromptsListChanged    bool     `json:"promptsListChanged,omitempty"`
	ResourcesListChanged  bool     `json:"resourcesListChanged,omitempty"`
	ResourceSubscriptions []string `json:"resourceSubscriptions,omitempty"`
}

// listen answers subscriptions/listen (2026-07-28) with a stream that
// stays open until the caller closes it: first
// notifications/subscriptions/acknowledged with what the gateway honours,
// then the notifications asked for, each carrying the request's id as
// its subscription id. The gateway honours toolsListChanged (sent when a
// new configuration arrives) and resourceSubscriptions: each resource
// goes through the pipeline as a subscribe of its own, and is
// acknowledged when it was admitted and its upstream accepted it. The
// upstreams' own prompt and resource list changes are not passed on, so
// those are never acknowledged. The stream itself is a session request.
func (h *Handler) listen(w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call) {
	var p struct {
		Notifications *listenFilter `json:"notifications"`
	}
	if !decodeParams(w, req, id, &p) {
		return
	}
	if p.Notifications == nil {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: notifications is required"})
		return
	}
	uris := slices.Compact(slices.Sorted(slices.Values(p.Notifications.ResourceSubscriptions)))
	if len(uris) > maxSubscriptionsPerSubscriber {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams,
			Message: "invalid params: a stream follows at most " + strconv.Itoa(maxSubscriptionsPerSubscriber) + " resources"})
		return
	}
	if !acceptsEventStream(r) {
		writeError(w, http.StatusBadRequest, id, &rpcError{Code: codeInvalidRequest,
			Message: "subscriptions/listen answers with an event stream: send Accept: text/event-stream"})
		return
	}
	ctx := r.Context()
	c.Op = pipeline.OpSession
	if _, err := h.backend.Run(ctx, c); err != nil {
		h.writeFailure(w, r, id, err)
		return
	}

	key := "listen-" + strconv.FormatInt(listens.Add(1), 10)
	updates := make(chan []byte, 16)
	var gone atomic.Bool
	notify := func(msg []byte) error {
		if gone.Load() {
			return ErrSubscriberGone
		}
		select {
		case updates <- msg:
		default: // a caller that does not read misses updates; it may read again
		}
		return nil
	}
	defer func() {
		gone.Store(true)
		if h.subs != nil {
			h.subs.DropSubscriber(key)
		}
	}()
	tools := h.listeners.add(key)
	defer h.listeners.remove(key, tools)

	ack := listenFilter{ToolsListChanged: p.Notifications.ToolsListChanged}
	for _, uri := range uris {
		if h.followFor(ctx, c, uri, key, notify) {
			ack.ResourceSubscriptions = append(ack.ResourceSubscriptions, uri)
		}
	}
	startEventStream(w)
	write := func(msg []byte) bool { return writeEvent(w, "", withSubscriptionID(msg, id)) == nil }
	ackParams, _ := json.Marshal(map[string]any{"notifications": ack})
	if msg, err := mcpwire.NewNotification("notifications/subscriptions/acknowledged", ackParams); err != nil || !write(msg) {
		return
	}
	t := time.NewTicker(keepAliveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			if err := http.NewResponseController(w).Flush(); err != nil {
				return
			}
		case msg := <-updates:
			if !write(msg) {
				return
			}
		case msg, ok := <-tools:
			if !ok {
				// The data plane is shutting down: end the subscription
				// gracefully.
				meta, _ := json.Marshal(map[string]json.RawMessage{mcpwire.MetaSubscriptionID: id})
				res, _ := json.Marshal(map[string]json.RawMessage{"resultType": json.RawMessage(`"complete"`), "_meta": meta})
				if out, err := mcpwire.NewResult(id, res); err == nil {
					_ = writeEvent(w, "", out)
				}
				return
			}
			if ack.ToolsListChanged && !write(msg) {
				return
			}
		}
	}
}

// followFor subscribes a listen stream (key) to the namespaced uri,
// through the pipeline as a call of its own beside the listen request c
// (same caller, same configuration version), and reports whether the
// subscription holds.
func (h *Handler) followFor(ctx context.Context, c *pipeline.Call, uri, key string, notify func([]byte) error) bool {
	params, _ := json.Marshal(map[string]string{"uri": uri})
	rt, e := route(c, params, []string{"uri"})
	if e != nil {
		return false
	}
	sc := &pipeline.Call{
		Protocol: c.Protocol, Method: c.Method, Credential: c.Credential, UserToken: c.UserToken,
		PeerCertificates: c.PeerCertificates, SourceIP: c.SourceIP, Hops: c.Hops, Start: h.now(),
		Config: c.Config, Mode: c.Mode, Quarantine: c.Quarantine, Rollout: c.Rollout,
		Agent: c.Agent, User: c.User,
		Op: pipeline.OpSubscribe, Target: rt.target(pipeline.KindResource), Arguments: rt.params,
		Relay: &pipeline.Relay{Notify: notify, Wire: &callWire{subscriber: key}},
	}
	res, err := h.backend.Run(ctx, sc)
	if err != nil {
		var ref *pipeline.Refusal
		if !errors.As(err, &ref) {
			h.logger.ErrorContext(ctx, "following a resource for a listen stream failed", slog.Any("error", err))
		}
		return false
	}
	return res.Failure == nil
}

// withSubscriptionID returns notification msg with the listen request's
// id as its subscription id in params._meta; msg as is when it cannot.
func withSubscriptionID(msg []byte, id json.RawMessage) []byte {
	m, err := mcpwire.Parse(msg)
	if err != nil {
		return msg
	}
	params := m.Params
	if len(params) == 0 {
		params = json.RawMessage(`{}`)
	}
	meta, err := mcpwire.Find(params, "_meta")
	if err != nil {
		return msg
	}
	if meta == nil {
		meta = json.RawMessage(`{}`)
	}
	if meta, err = mcpwire.Set(meta, mcpwire.MetaSubscriptionID, id); err != nil {
		return msg
	}
	if params, err = mcpwire.Set(params, "_meta", meta); err != nil {
		return msg
	}
	out, err := mcpwire.Set(m.Raw, "params", params)
	if err != nil {
		return msg
	}
	return out
}
