package llm

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	"github.com/portcullis-gw/portcullis/internal/jsontext"
	"github.com/portcullis-gw/portcullis/internal/llmwire"
	"github.com/portcullis-gw/portcullis/internal/tokencount"
)

// The endpoints' bases: an OpenAI SDK's base URL is the data plane's
// OpenAIBase + "/v1", an Anthropic SDK's the data plane's AnthropicBase.
const (
	OpenAIBase    = "/llm/openai"
	AnthropicBase = "/llm/anthropic"
)

// MaxBodyBytes bounds a request body (prompts carry images); an
// upstream's max_request_bytes bounds what is forwarded to it.
const MaxBodyBytes = 16 << 20

// ReasonHeader carries a refusal's machine-readable reason.
const ReasonHeader = "Portcullis-Reason"

// endpoint is what a path serves.
type endpoint struct {
	api    llmwire.API // 0 for a model listing
	family llmwire.Family
}

var endpoints = map[string]endpoint{
	OpenAIBase + "/v1/chat/completions": {llmwire.ChatCompletions, llmwire.OpenAI},
	OpenAIBase + "/v1/responses":        {llmwire.Responses, llmwire.OpenAI},
	OpenAIBase + "/v1/models":           {0, llmwire.OpenAI},
	AnthropicBase + "/v1/messages":      {llmwire.Messages, llmwire.Anthropic},
	AnthropicBase + "/v1/models":        {0, llmwire.Anthropic},
}

// singleHeaders are the headers the endpoints decide on: each may appear
// at most once.
var singleHeaders = []string{"Authorization", "X-Api-Key", "Portcullis-User-Token", "Content-Type", "Host"}

// Handler serves the LLM endpoints. Safe for concurrent use.
type Handler struct {
	backend protocol.Backend
	log     *slog.Logger
	hopID   string
	anon    AnonymousRecorder
	now     func() time.Time
}

// NewHandler returns the LLM endpoints over backend. hopID names this data
// plane for loop detection ("" turns it off); anon counts the refusals of
// unidentified callers (nil: not counted). Browser cross-origin POSTs are
// refused (net/http's CrossOriginProtection); SDKs send no Origin.
func NewHandler(b protocol.Backend, log *slog.Logger, hopID string, anon AnonymousRecorder) http.Handler {
	h := &Handler{backend: b, log: log.With("component", "llm"), hopID: hopID, anon: anon, now: time.Now}
	return http.NewCrossOriginProtection().Handler(h)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	family := llmwire.OpenAI
	if strings.HasPrefix(r.URL.Path, AnthropicBase+"/") {
		family = llmwire.Anthropic
	}
	ep, ok := endpoints[r.URL.Path]
	if !ok {
		writeError(w, family, http.StatusNotFound, "not_found", "no such endpoint: OpenAI clients use "+OpenAIBase+"/v1 as their base URL, Anthropic clients "+AnthropicBase)
		return
	}
	want := http.MethodPost
	if ep.api == 0 {
		want = http.MethodGet
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		writeError(w, family, http.StatusMethodNotAllowed, "method_not_allowed", "use "+want)
		return
	}
	for _, name := range singleHeaders {
		if len(r.Header.Values(name)) > 1 {
			writeError(w, family, http.StatusBadRequest, "invalid_request", "header "+name+" appears more than once; send it once")
			return
		}
	}
	hops, err := hop.Parse(r.Header)
	if err == nil && h.hopID != "" {
		err = hop.Check(hops, h.hopID)
	}
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, hop.ErrLoop) {
			status = http.StatusLoopDetected
		}
		writeError(w, family, status, "invalid_request", err.Error())
		return
	}
	token := credential(r)
	if token == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		h.anonymous(w, r, family)
		return
	}
	call := h.backend.Begin(r)
	call.Hops, call.Protocol, call.Credential = hops, Name, token
	if call.Start.IsZero() {
		call.Start = h.now()
	}
	if !call.SourceIP.IsValid() {
		call.SourceIP = sourceAddr(r)
	}
	if call.Config == nil {
		w.Header().Set("Retry-After", "5")
		writeRefusal(w, family, pipeline.Refuse(pipeline.ReasonNoConfig, "the data plane has no configuration yet; retry shortly"))
		return
	}
	// Authenticate before the body is read.
	agent, refusal := stages.ResolveAgent(r.Context(), call.Config, token, call.PeerCertificates, call.Start)
	if refusal != nil {
		h.anonymous(w, r, family)
		return
	}
	call.Agent = agent
	if ep.api == 0 {
		h.list(w, r, call, family)
		return
	}
	h.complete(w, r, call, ep.api)
}

// complete serves one model call.
func (h *Handler) complete(w http.ResponseWriter, r *http.Request, call *pipeline.Call, api llmwire.API) {
	family := api.Family()
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if cs := strings.ToLower(params["charset"]); err != nil || mt != "application/json" || (cs != "" && cs != "utf-8") {
		writeError(w, family, http.StatusUnsupportedMediaType, "invalid_request", "send the request as Content-Type: application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, family, http.StatusRequestEntityTooLarge, "invalid_request", "the request body exceeds "+strconv.Itoa(MaxBodyBytes>>20)+" MiB")
			return
		}
		writeError(w, family, http.StatusBadRequest, "invalid_request", "could not read the request body")
		return
	}
	if err := jsontext.Check(body, jsontext.DefaultMaxDepth); err != nil {
		writeError(w, family, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	req, err := llmwire.ParseRequest(api, body)
	if err != nil {
		writeError(w, family, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	call.Op, call.Method = pipeline.OpCall, api.String()
	call.Target = pipeline.Target{Kind: pipeline.KindModel, Name: req.Model}
	outputCap := int64(defaultOutputCap)
	if m, ok := call.Config.Model(req.Model); ok {
		call.Target = pipeline.Target{Kind: pipeline.KindModel, Name: m.Name, Upstream: m.Upstream, Own: m.Own, Model: m}
		outputCap = m.OutputCap
	}
	call.Payload, call.Stream, call.Tools = body, req.Stream, req.Tools
	call.Demand = demand(req, outputCap)
	wr := &wire{api: api, req: req, in: r.Header, w: w, rc: http.NewResponseController(w), outputCap: outputCap}
	call.Relay = &pipeline.Relay{Wire: wr}
	call.Content = content{body: body}
	if req.Stream {
		call.Relay.Notify = wr.send
	}
	res, err := h.backend.Run(r.Context(), call)
	wr.finish(res, err)
}

// defaultOutputCap stands in for a model's output cap in a call of a
// model that is not served (it is refused before the cap matters).
const defaultOutputCap = 4096

// demand is the most a request may consume: its input, estimated, and
// its output limit (or the model's cap) for each choice it asks for.
func demand(req *llmwire.Request, outputCap int64) pipeline.Demand {
	in := req.Input()
	// Each string (a message, a part) costs the provider a few tokens of
	// framing; each inline blob is taken at a large image's cost.
	input := tokencount.Count(in.Text) + int64(in.Strings)*4 + int64(in.Blobs)*llmwire.BlobTokens
	out := req.MaxTokens
	if out == 0 {
		out = outputCap
	}
	return pipeline.Demand{InputTokens: input, OutputTokens: out * req.Choices}
}

// list answers GET /v1/models: the models the agent may call, through
// the pipeline (a list operation, audited).
func (h *Handler) list(w http.ResponseWriter, r *http.Request, call *pipeline.Call, family llmwire.Family) {
	call.Op, call.Method = pipeline.OpList, "models"
	call.Target = pipeline.Target{Kind: pipeline.KindModel}
	call.Relay = &pipeline.Relay{Wire: &wire{family: family}}
	if _, err := h.backend.Run(r.Context(), call); err != nil {
		writeRefusal(w, family, pipeline.AsRefusal(err))
		return
	}
	models := make([]llmwire.ModelInfo, len(call.Visible))
	for i, t := range call.Visible {
		models[i] = llmwire.ModelInfo{ID: t.Name, Owner: t.Upstream}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(llmwire.ModelList(family, models))
}

// credential is the caller's bearer token, or its x-api-key (what an
// Anthropic SDK sends its API key in).
func credential(r *http.Request) string {
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

const msgUnauthenticated = "a valid Portcullis API key is required: give your agent's key (pck_…) to the SDK as its API key"

// anonymous answers a caller no agent was identified for, and counts it.
func (h *Handler) anonymous(w http.ResponseWriter, r *http.Request, family llmwire.Family) {
	if h.anon != nil {
		h.anon.Refused(sourceAddr(r), string(pipeline.ReasonUnauthenticated))
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis"`)
	writeRefusal(w, family, pipeline.Refuse(pipeline.ReasonUnauthenticated, msgUnauthenticated))
}

// sourceAddr is the request's peer address (invalid when it has none).
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}
