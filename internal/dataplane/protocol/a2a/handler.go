package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/jsontext"
)

// Paths of the endpoint: every remote agent is served under PathPrefix
// and its upstream's name, its JSON-RPC endpoint at the path itself and
// its card below it.
const (
	PathPrefix = "/a2a/"
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 1 << 20
)

// Handler serves agents A2A at /a2a/{agent}: JSON-RPC (1.0 and 0.3, each
// agent in the version it speaks) with SSE for streams, and the agent's
// card as the caller may see it at /a2a/{agent}/.well-known/agent-card.json.
// Every request is authenticated; every one of an identified agent with a
// method the gateway serves runs through the pipeline. It is safe for
// concurrent use.
type Handler struct {
	backend  protocol.Backend
	logger   *slog.Logger
	hopID    string
	refusals protocol.AnonymousRecorder
	now      func() time.Time
	cards    cardCache
	// stopped ends the streams in flight when the data plane shuts down.
	stopped context.Context
	stop    context.CancelFunc
}

// NewHandler returns the A2A endpoint. hopID names this data plane for
// loop detection ("" turns it off); refusals counts anonymous refusals
// (nil: not counted).
func NewHandler(b protocol.Backend, logger *slog.Logger, hopID string, refusals protocol.AnonymousRecorder) *Handler {
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{
		backend: b, logger: logger.With("component", "a2a"), hopID: hopID, refusals: refusals,
		now: time.Now, stopped: ctx, stop: cancel,
	}
}

// Stop ends the streams in flight (their callers get a stream that ends;
// the agents' tasks go on, and callers can subscribe to them again).
func (h *Handler) Stop() { h.stop() }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	agent, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, PathPrefix), "/")
	if agent == "" {
		http.NotFound(w, r)
		return
	}
	if e := h.checkEdge(r); e != nil {
		writeJSON(w, e.status, a2awire.NewError(nil, e.err))
		return
	}
	switch rest {
	case "":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed: POST JSON-RPC requests", http.StatusMethodNotAllowed)
			return
		}
		h.serveRPC(w, r, agent)
	case strings.TrimPrefix(a2awire.WellKnownCardPath, "/"), strings.TrimPrefix(a2awire.LegacyCardPath, "/"):
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed: GET the agent card", http.StatusMethodNotAllowed)
			return
		}
		h.serveCard(w, r, agent)
	default:
		http.NotFound(w, r)
	}
}

// singleHeaders are the headers the endpoint decides on; each may appear
// at most once (with two, which one "wins" would depend on the reader).
var singleHeaders = []string{"Authorization", "Portcullis-User-Token", a2awire.HeaderVersion, "Content-Type", "Host"}

// edgeError is a request refused before its body is read.
type edgeError struct {
	status int
	err    *a2awire.Error
}

// checkEdge applies what every request must meet before anything else
// looks at it: no duplicated decision header, no forwarding loop, and for
// a POST a JSON body.
func (h *Handler) checkEdge(r *http.Request) *edgeError {
	for _, name := range singleHeaders {
		if len(r.Header.Values(name)) > 1 {
			return &edgeError{http.StatusBadRequest, &a2awire.Error{Code: a2awire.CodeInvalidRequest, Message: "header " + name + " appears more than once; send it once"}}
		}
	}
	if h.hopID != "" {
		chain, err := hop.Parse(r.Header)
		if err == nil {
			err = hop.Check(chain, h.hopID)
		}
		if errors.Is(err, hop.ErrLoop) {
			return &edgeError{http.StatusLoopDetected, &a2awire.Error{Code: a2awire.CodeInvalidRequest, Message: err.Error()}}
		}
		if err != nil {
			return &edgeError{http.StatusBadRequest, &a2awire.Error{Code: a2awire.CodeInvalidRequest, Message: err.Error()}}
		}
	}
	if r.Method == http.MethodPost {
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		charset := strings.ToLower(params["charset"])
		if err != nil || (mt != "application/json" && mt != "application/a2a+json") || (charset != "" && charset != "utf-8") {
			return &edgeError{http.StatusUnsupportedMediaType, &a2awire.Error{Code: a2awire.CodeInvalidRequest,
				Message: "send JSON-RPC requests as Content-Type: application/json (UTF-8)"}}
		}
	}
	return nil
}

// begin starts the call of a request to agent and identifies the caller;
// false when it answered already (no credential, no configuration, an
// unknown caller).
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, method string, onError func(status int, e *a2awire.Error)) (*pipeline.Call, bool) {
	token := bearer(r)
	if token == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		h.anonymous(w, r, false)
		return nil, false
	}
	call := h.backend.Begin(r)
	if call.Config == nil {
		w.Header().Set("Retry-After", "5")
		onError(http.StatusServiceUnavailable, &a2awire.Error{Code: a2awire.CodeServerError,
			Message: "the data plane has no configuration yet; retry shortly", Data: reasonData(pipeline.ReasonNoConfig)})
		return nil, false
	}
	call.Hops, _ = hop.Parse(r.Header) // checkEdge refused a bad chain
	if call.Start.IsZero() {
		call.Start = h.now()
	}
	if !call.SourceIP.IsValid() {
		call.SourceIP = sourceAddr(r)
	}
	call.Protocol, call.Method, call.Credential = Name, method, token
	agent, refusal := stages.ResolveAgent(r.Context(), call.Config, token, call.PeerCertificates, call.Start)
	if refusal != nil {
		h.anonymous(w, r, true)
		return nil, false
	}
	call.Agent = agent
	return call, true
}

// serveRPC handles one JSON-RPC request to agent. The order matters: no
// credential means 401 before the body is read; then the envelope, the
// version, the configuration and the caller, then the method.
func (h *Handler) serveRPC(w http.ResponseWriter, r *http.Request, agent string) {
	if bearer(r) == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		h.anonymous(w, r, false)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, a2awire.NewError(nil, &a2awire.Error{Code: a2awire.CodeInvalidRequest, Message: "request body exceeds 1 MiB"}))
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, a2awire.NewError(nil, &a2awire.Error{Code: a2awire.CodeParseError, Message: "could not read the request body"}))
		return
	}
	if err := jsontext.Check(body, jsontext.DefaultMaxDepth); err != nil {
		writeJSON(w, http.StatusBadRequest, a2awire.NewError(nil, &a2awire.Error{Code: a2awire.CodeParseError, Message: err.Error()}))
		return
	}
	req, id, perr := a2awire.ParseRequest(body)
	if perr != nil {
		writeJSON(w, http.StatusBadRequest, a2awire.NewError(id, perr))
		return
	}
	version, ok := a2awire.ParseVersion(r.Header.Get(a2awire.HeaderVersion))
	if !ok {
		writeJSON(w, http.StatusOK, a2awire.NewError(id, &a2awire.Error{Code: a2awire.CodeVersionNotSupported,
			Message: "the gateway brokers A2A 1.0 and 0.3; send A2A-Version: 1.0 (or none, for 0.3)"}))
		return
	}
	op := a2awire.Lookup(version, req.Method)
	out := newAnswer(w, r, id, op.Streaming(), h.stopped)
	call, ok := h.begin(w, r, req.Method, func(status int, e *a2awire.Error) { out.fail(status, e) })
	if !ok {
		return
	}
	switch op {
	case a2awire.OpUnknown:
		out.fail(http.StatusOK, &a2awire.Error{Code: a2awire.CodeMethodNotFound, Message: "method not found in A2A " + version.String() + ": " + truncate(req.Method, 64)})
		return
	case a2awire.OpPushConfig:
		out.fail(http.StatusOK, errPushNotSupported)
		return
	}
	pin, ok := call.Config.Agent(agent)
	if !ok {
		out.fail(http.StatusNotFound, &a2awire.Error{Code: a2awire.CodeInvalidRequest, Message: "no remote agent " + truncate(agent, 64) + " is served here",
			Data: reasonData(pipeline.ReasonUnknownTool)})
		return
	}
	facts := h.cards.facts(pin.Upstream, pin.DefinitionHash, upstreamURL(call, pin.Upstream), pin.Definition)
	if !facts.ok {
		out.fail(http.StatusOK, &a2awire.Error{Code: a2awire.CodeUnsupportedOperation,
			Message: "remote agent " + agent + "'s approved card offers no JSON-RPC interface of an A2A version the gateway brokers (1.0, 0.3)"})
		return
	}
	if facts.version != version {
		out.fail(http.StatusOK, &a2awire.Error{Code: a2awire.CodeVersionNotSupported,
			Message: "remote agent " + agent + " speaks A2A " + facts.version.String() + "; send A2A-Version: " + versionHeader(facts.version) + " (the gateway does not translate between versions)"})
		return
	}
	if op == a2awire.OpExtendedCard {
		h.card(r.Context(), out, r, call, agent, facts)
		return
	}
	if !h.prepare(call, out, req, op, version, agent) {
		return
	}
	ctx := r.Context()
	if op.Streaming() {
		var cancel context.CancelFunc
		ctx, cancel = out.streamContext(ctx)
		defer cancel()
	}
	res, err := h.backend.Run(ctx, call)
	if err != nil {
		h.writeRefusal(out, r, err)
		return
	}
	switch {
	case res.Failure != nil:
		var e a2awire.Error
		if json.Unmarshal(res.Failure, &e) != nil {
			h.writeRefusal(out, r, errors.New("invalid failure"))
			return
		}
		out.fail(http.StatusOK, &e)
	case len(res.Body) > 0:
		out.finish(res.Body)
	default:
		out.end()
	}
}

// errPushNotSupported refuses push-notification configuration: the agent,
// not the gateway, would call the URLs, past the gateway's policy and
// audit.
var errPushNotSupported = &a2awire.Error{Code: a2awire.CodePushNotificationNotSupported,
	Message: "push notifications are not available through the gateway (the agent would call your URL past the gateway's policy and audit); stream or poll instead"}

// upstreamURL is the URL of upstream name in the call's configuration
// ("" when it has none).
func upstreamURL(call *pipeline.Call, name string) string {
	if r, ok := call.Config.(upstream.Resolver); ok {
		if u, ok := r.Upstream(name); ok {
			return u.GetUrl()
		}
	}
	return ""
}

// versionHeader is what a caller sends to speak v.
func versionHeader(v a2awire.Version) string {
	if v == a2awire.V03 {
		return "0.3 (or none)"
	}
	return v.String()
}

// prepare fills the call of a request: the operation, the target, what
// the forwarder needs; false when it answered the request itself.
func (h *Handler) prepare(call *pipeline.Call, out *answer, req *a2awire.Request, op a2awire.Op, version a2awire.Version, agent string) bool {
	call.Target = pipeline.Target{Kind: pipeline.KindAgent, Name: agent}
	params := req.Params
	if params == nil {
		params = json.RawMessage(`{}`)
	}
	switch op {
	case a2awire.OpSend, a2awire.OpSendStream:
		f, err := a2awire.ReadSend(params)
		if err != nil {
			out.fail(http.StatusOK, &a2awire.Error{Code: a2awire.CodeInvalidParams, Message: "invalid params: " + err.Error()})
			return false
		}
		if f.PushConfig {
			out.fail(http.StatusOK, errPushNotSupported)
			return false
		}
		if len(f.Skill) > maxSkill {
			out.fail(http.StatusOK, &a2awire.Error{Code: a2awire.CodeInvalidParams, Message: "invalid params: the skill named in metadata is too long"})
			return false
		}
		call.Op = pipeline.OpCall
		call.Message = &pipeline.Message{Skill: f.Skill, Bytes: f.MessageBytes, MetadataBytes: f.MetadataBytes}
		call.Target.Item, _ = a2awire.RequestIDs(op, params)
	case a2awire.OpGetTask, a2awire.OpCancelTask, a2awire.OpSubscribe:
		task, _ := a2awire.RequestIDs(op, params)
		if task == "" {
			out.fail(http.StatusOK, &a2awire.Error{Code: a2awire.CodeInvalidParams, Message: "invalid params: id (the task's) is required"})
			return false
		}
		call.Op, call.Target.Item = operations[op], task
	case a2awire.OpListTasks:
		call.Op = pipeline.OpQuery
	}
	call.Relay = &pipeline.Relay{Wire: &exchange{version: version, op: op, method: req.Method, params: params, callerID: out.id}}
	call.Content = content{params: params}
	if op.Streaming() {
		call.Relay.Notify = out.send
	}
	return true
}

// maxSkill bounds the skill a request names.
const maxSkill = 128

// operations are the pipeline operations of the task methods.
var operations = map[a2awire.Op]pipeline.Operation{
	a2awire.OpGetTask:    pipeline.OpGet,
	a2awire.OpCancelTask: pipeline.OpCancel,
	a2awire.OpSubscribe:  pipeline.OpSubscribe,
}

// serveCard answers a GET of agent's card with the caller's view of it.
func (h *Handler) serveCard(w http.ResponseWriter, r *http.Request, agent string) {
	out := newAnswer(w, r, nil, false, h.stopped)
	out.plain = true
	call, ok := h.begin(w, r, "agent-card", func(status int, e *a2awire.Error) { out.fail(status, e) })
	if !ok {
		return
	}
	pin, ok := call.Config.Agent(agent)
	if !ok {
		// The same answer as for an agent the caller may not use.
		out.fail(http.StatusNotFound, notServed(agent))
		return
	}
	h.card(r.Context(), out, r, call, agent, h.cards.facts(pin.Upstream, pin.DefinitionHash, upstreamURL(call, pin.Upstream), pin.Definition))
}

// card runs the caller's card request through the pipeline (a list of the
// agent's skills) and answers with the rewritten card.
func (h *Handler) card(ctx context.Context, out *answer, r *http.Request, call *pipeline.Call, agent string, facts cardFacts) {
	call.Op, call.Target = pipeline.OpList, pipeline.Target{Kind: pipeline.KindSkill, Upstream: agent}
	if _, err := h.backend.Run(ctx, call); err != nil {
		h.writeRefusal(out, r, err)
		return
	}
	var pin *pipeline.Tool
	var skills []string
	for _, t := range call.Visible {
		if t.Name == "" {
			pin = &t.Tool
		} else {
			skills = append(skills, t.Name)
		}
	}
	if pin == nil || !facts.ok {
		out.fail(http.StatusNotFound, notServed(agent))
		return
	}
	card, err := rewriteCard(cardView{card: pin.Definition, version: facts.version, endpoint: endpointURL(r, agent), upstream: upstreamURL(call, agent), skills: skills})
	if err != nil {
		h.writeRefusal(out, r, err)
		return
	}
	if out.plain {
		out.w.Header().Set("Cache-Control", "no-store")
		writeJSON(out.w, http.StatusOK, card)
		return
	}
	out.finish(card)
}

// notServed refuses a card the caller cannot have, whatever the reason.
func notServed(agent string) *a2awire.Error {
	return &a2awire.Error{Code: a2awire.CodeInvalidRequest,
		Message: "no remote agent " + truncate(agent, 64) + " you may use is served here (it may be unknown to the gateway, not permitted to you by policy, or quarantined)"}
}

// writeRefusal answers a refused or failed call with the A2A error of its
// reason: unauthenticated as -31401 (HTTP 401 outside a stream), denied as
// -31403, an unknown task as TaskNotFoundError, invalid arguments as
// -32602, what the gateway cannot serve now as -32000, its own failures as
// -32603; each with the machine-readable reason in an ErrorInfo.
func (h *Handler) writeRefusal(out *answer, r *http.Request, err error) {
	var typed *pipeline.Refusal
	if !errors.As(err, &typed) {
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the caller left
		}
		h.logger.Log(r.Context(), level, "A2A request failed", slog.Any("error", err))
	}
	ref := pipeline.AsRefusal(err)
	e := &a2awire.Error{Code: a2awire.CodeServerError, Message: ref.Message, Data: reasonData(ref.Reason)}
	status := http.StatusOK
	switch ref.Reason {
	case pipeline.ReasonUnauthenticated:
		e.Code, status = a2awire.CodeUnauthenticated, http.StatusUnauthorized
		out.w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis", error="invalid_token"`)
	case pipeline.ReasonDenied:
		e.Code = a2awire.CodeUnauthorized
	case pipeline.ReasonUnknownTask:
		e.Code = a2awire.CodeTaskNotFound
	case pipeline.ReasonInvalidArguments:
		e.Code = a2awire.CodeInvalidParams
	case pipeline.ReasonInternal:
		e.Code = a2awire.CodeInternal
	}
	out.fail(status, e)
}

// reasonData is an A2A 1.0 error's details naming the refusal reason.
func reasonData(r pipeline.Reason) json.RawMessage {
	return a2awire.ErrorInfo(strings.ToUpper(string(r)), errorDomain, map[string]string{"reason": string(r)})
}

// errorDomain is the ErrorInfo domain of the gateway's own errors.
const errorDomain = "portcullis"

// anonymous answers a request refused before any agent could be
// identified with 401 and the challenge, and counts it.
func (h *Handler) anonymous(w http.ResponseWriter, r *http.Request, invalid bool) {
	if h.refusals != nil {
		h.refusals.Refused(Name, sourceAddr(r), string(pipeline.ReasonUnauthenticated))
	}
	challenge := `Bearer realm="portcullis"`
	if invalid {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeJSON(w, http.StatusUnauthorized, a2awire.NewError(nil, &a2awire.Error{Code: a2awire.CodeUnauthenticated,
		Message: msgUnauthenticated, Data: reasonData(pipeline.ReasonUnauthenticated)}))
}

const msgUnauthenticated = "a valid credential is required: send Authorization: Bearer pck_… (an agent's API key) or a JWT the gateway trusts"

// bearer returns the token of an `Authorization: Bearer` header, or "".
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// sourceAddr is the request's peer address (invalid when it has none).
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// endpointURL is the gateway's JSON-RPC endpoint for agent, from the
// request's scheme and Host (a plain host[:port]; else a relative URL).
func endpointURL(r *http.Request, agent string) string {
	host := r.Host
	ok := host != "" && len(host) <= 255
	for _, c := range []byte(host) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			ok = false
		}
	}
	path := PathPrefix + agent
	if !ok {
		return path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + host + path
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body) //nolint:gosec // JSON the gateway encoded, served as application/json
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
