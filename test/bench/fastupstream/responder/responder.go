// Package responder is a fast MCP server for benchmarks: it serves the demo
// upstream's tools (test/demoupstream/demo) over legacy Streamable HTTP with
// as little work per call as the protocol allows, so that a proxy in front
// of it, not the server, is what a benchmark measures.
//
// It lists the demo's tool definitions byte for byte as the demo lists them
// (so a pin taken from either matches both), answers tools/call for each of
// them with the same content the demo returns, and keeps MCP sessions the
// way the Go SDK's stateful handler does, minimally but as the 2025-11-25
// transport specifies:
//
//   - initialize creates a session and returns its Mcp-Session-Id; every
//     other POST must carry a known one (missing: 400, unknown: 404);
//     DELETE ends it; a GET stream is not offered (405);
//   - an Mcp-Protocol-Version header, when present, must name a supported
//     version (else 400);
//   - a notification or a response is accepted with 202 and no body;
//   - server/discover is answered as the Go SDK's stateful server answers
//     it, listing only legacy versions, so a modern-first client falls
//     back to initialize;
//   - a request's answer is one JSON object (Options.JSON) or an event
//     stream with one message event, the Go SDK's default.
//
// Answers are built by appending to a pooled buffer: precomputed bytes
// for everything but the request id and the weather of the asked city.
// There is no authentication: it listens on loopback for benchmarks only.
package responder

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

// Versions are the protocol versions it speaks, newest first: the Go SDK
// stateful server's legacy versions.
var Versions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// Defaults for Options.
const (
	DefaultMaxSessions = 4096
	DefaultMaxBody     = 1 << 20
)

// Options configures a Handler.
type Options struct {
	// JSON answers requests with application/json instead of an event
	// stream.
	JSON bool
	// MaxSessions bounds the open sessions; initialize beyond it is
	// refused with 503 (default DefaultMaxSessions).
	MaxSessions int
	// MaxBody bounds a request body (default DefaultMaxBody).
	MaxBody int64
	// Logger receives start-up and refusal logs; nil discards them.
	Logger *slog.Logger
}

// Handler serves the MCP endpoint on every path but /healthz, which
// answers GET with 200 once the handler exists. It is safe for concurrent
// use.
type Handler struct {
	opts  Options
	log   *slog.Logger
	tools map[string]tool
	list  []byte // the tools/list result

	mu       sync.RWMutex
	sessions map[string]struct{}

	bodies sync.Pool // *bytes.Buffer: request bodies
	slices sync.Pool // *[]byte: answers being built
}

var _ http.Handler = (*Handler)(nil)

// tool answers one tool's calls: result appends the tools/call result
// for arguments (a JSON object) to dst, or returns an error message when
// the arguments do not fit the tool, which becomes an isError result.
type tool struct {
	result func(dst []byte, arguments json.RawMessage) ([]byte, string)
}

// New builds a Handler. It lists the demo's tools from the demo's own MCP
// server once, so its definitions are the demo's, byte for byte.
func New(ctx context.Context, opts Options) (*Handler, error) {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	defs, err := demoDefinitions(ctx)
	if err != nil {
		return nil, err
	}
	h := &Handler{opts: opts, log: opts.Logger.With("component", "responder"), tools: demoTools(), sessions: map[string]struct{}{}}
	h.bodies.New = func() any { return new(bytes.Buffer) }
	h.slices.New = func() any { b := make([]byte, 0, 4096); return &b }
	list := []byte(`{"tools":[`)
	for i, def := range defs {
		var head struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(def, &head); err != nil {
			return nil, fmt.Errorf("the demo's tool list: %w", err)
		}
		if _, ok := h.tools[head.Name]; !ok {
			return nil, fmt.Errorf("the demo lists tool %q, which the responder cannot answer", head.Name)
		}
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, def...)
	}
	h.list = append(list, "]}"...)
	return h, nil
}

// demoDefinitions lists the demo's tools as its server sends them over
// HTTP (the SDK's key order, which a client that re-encodes the
// definitions would lose), from a demo server on a loopback port of this
// process that lives only for the listing.
func demoDefinitions(ctx context.Context) ([]json.RawMessage, error) {
	d := demo.NewHandler(demo.Options{Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(d)
	defer srv.Close()
	defer d.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c, err := mcpclient.New(mcpclient.Config{URL: srv.URL + "/mcp", HTTP: &http.Client{Transport: tr}, Name: "fast-upstream"})
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
	defs, err := c.ListTools(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the demo's tools: %w", err)
	}
	return defs, nil
}

// demoTools answers the demo's four tools as the demo does, from a fixed
// state: the two invoices the demo starts with, and no state kept.
func demoTools() map[string]tool {
	return map[string]tool{
		demo.ToolGetWeather: {result: weather},
		demo.ToolListInvoices: {result: func(dst []byte, _ json.RawMessage) ([]byte, string) {
			return append(dst, `{"content":[{"type":"text","text":"{\"invoices\":[{\"amount\":12000,\"customer\":\"acme\",\"id\":\"inv-1\"},{\"amount\":4500,\"customer\":\"globex\",\"id\":\"inv-2\"}]}"}],`+
				`"structuredContent":{"invoices":[{"id":"inv-1","customer":"acme","amount":12000},{"id":"inv-2","customer":"globex","amount":4500}]}}`...), ""
		}},
		demo.ToolCreateInvoice: {result: func(dst []byte, args json.RawMessage) ([]byte, string) {
			var in struct {
				Customer string `json:"customer"`
				Amount   int    `json:"amount"`
			}
			if err := json.Unmarshal(args, &in); err != nil || in.Amount <= 0 {
				return dst, "amount must be positive"
			}
			out, _ := json.Marshal(map[string]any{"id": "inv-3", "customer": in.Customer, "amount": in.Amount})
			return textAndStructured(dst, out), ""
		}},
		demo.ToolSendPayment: {result: func(dst []byte, args json.RawMessage) ([]byte, string) {
			var in struct {
				To     string `json:"to"`
				Amount int    `json:"amount"`
			}
			if err := json.Unmarshal(args, &in); err != nil || in.Amount <= 0 {
				return dst, "amount must be positive"
			}
			out, _ := json.Marshal(map[string]any{"id": "pay-1", "to": in.To, "amount": in.Amount, "status": "sent"})
			return textAndStructured(dst, out), ""
		}},
	}
}

// textAndStructured is a result carrying out both as text and as
// structured content, as the Go SDK renders a typed tool's output.
func textAndStructured(dst, out []byte) []byte {
	text, _ := json.Marshal(string(out))
	dst = append(dst, `{"content":[{"type":"text","text":`...)
	dst = append(dst, text...)
	dst = append(dst, `}],"structuredContent":`...)
	dst = append(dst, out...)
	return append(dst, '}')
}

// weather answers get_weather as the demo does: "<city>: sunny, <t>°C"
// with t = 10 + len(city) mod 15.
func weather(dst []byte, args json.RawMessage) ([]byte, string) {
	var in struct {
		City *string `json:"city"`
	}
	if err := json.Unmarshal(args, &in); err != nil || in.City == nil {
		return dst, `invalid arguments: property "city" (a string) is required`
	}
	temp := strconv.Itoa(10 + len(*in.City)%15)
	city, _ := json.Marshal(*in.City) // escaped as JSON text, quotes included
	cityText := city[1 : len(city)-1]
	dst = append(dst, `{"content":[{"type":"text","text":"`...)
	dst = append(dst, cityText...)
	dst = append(dst, `: sunny, `...)
	dst = append(dst, temp...)
	dst = append(dst, `°C"}],"structuredContent":{"city":`...)
	dst = append(dst, city...)
	dst = append(dst, `,"forecast":"sunny","temp_c":`...)
	dst = append(dst, temp...)
	return append(dst, "}}"...), ""
}

// OpenSessions is the number of open sessions.
func (h *Handler) OpenSessions() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sessions)
}

// Header names (canonical forms, so reading them needs no conversion).
const (
	hdrSession  = "Mcp-Session-Id"
	hdrProtocol = "Mcp-Protocol-Version"
)

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeNoMethod       = -32601
	codeInvalidParams  = -32602
)

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && r.Method == http.MethodGet {
		w.WriteHeader(http.StatusOK)
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !loopbackOrigin(o) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodDelete:
		h.endSession(w, r)
	default:
		w.Header().Set("Allow", "POST, DELETE")
		http.Error(w, "this server offers no GET stream", http.StatusMethodNotAllowed)
	}
}

// loopbackOrigin accepts an Origin on a loopback host (DNS rebinding
// protection, as the transport specification asks).
func loopbackOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
		return true
	}
	return false
}

// envelope is the part of a JSON-RPC message the responder reads.
type envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// validID reports whether id (valid JSON, or empty when absent) may be
// echoed: absent, null, a string or a number.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	}
	return string(id) == "null"
}

// callParams are tools/call's params.
type callParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	if v := r.Header.Get(hdrProtocol); v != "" && !slices.Contains(Versions, v) {
		http.Error(w, fmt.Sprintf("unsupported %s %q", hdrProtocol, v), http.StatusBadRequest)
		return
	}
	buf := h.bodies.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooled {
			buf.Reset()
			h.bodies.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, h.opts.MaxBody+1)); err != nil {
		http.Error(w, "read the request body", http.StatusBadRequest)
		return
	}
	body := buf.Bytes()
	if int64(len(body)) > h.opts.MaxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	var m envelope
	if err := json.Unmarshal(body, &m); err != nil {
		h.writeError(w, http.StatusBadRequest, nil, codeParse, "not one JSON-RPC message (batches are not accepted)")
		return
	}
	if !validID(m.ID) {
		h.writeError(w, http.StatusBadRequest, nil, codeInvalidRequest, "id must be a string or a number")
		return
	}
	if m.JSONRPC != "2.0" {
		h.writeError(w, http.StatusBadRequest, m.ID, codeInvalidRequest, `"jsonrpc" must be "2.0"`)
		return
	}
	isRequest := m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null"

	switch m.Method {
	case "initialize":
		if !isRequest {
			h.writeError(w, http.StatusBadRequest, nil, codeInvalidRequest, "initialize must be a request")
			return
		}
		h.initialize(w, m)
		return
	case "server/discover":
		if isRequest {
			h.writeResult(w, m.ID, discoverResult)
			return
		}
	}

	id := r.Header.Get(hdrSession)
	if id == "" {
		http.Error(w, "missing "+hdrSession+": initialize first", http.StatusBadRequest)
		return
	}
	h.mu.RLock()
	_, known := h.sessions[id]
	h.mu.RUnlock()
	if !known {
		http.Error(w, "unknown session: initialize again", http.StatusNotFound)
		return
	}
	if !isRequest {
		if m.Method == "" && (m.Result == nil) == (m.Error == nil) {
			h.writeError(w, http.StatusBadRequest, m.ID, codeInvalidRequest, "neither a request, a notification nor a response")
			return
		}
		// A notification or a response (to no request of ours): accepted.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	switch m.Method {
	case "tools/call":
		h.call(w, m)
	case "tools/list":
		h.writeResult(w, m.ID, h.list)
	case "ping":
		h.writeResult(w, m.ID, []byte("{}"))
	default:
		h.writeError(w, http.StatusOK, m.ID, codeNoMethod, "method not found")
	}
}

// discoverResult is how the Go SDK's stateful server answers
// server/discover: it supports only legacy versions.
var discoverResult = []byte(`{"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"fast-upstream","version":"1.0.0"}},` +
	`"ttlMs":0,"cacheScope":"public","supportedVersions":["2025-11-25","2025-06-18","2025-03-26","2024-11-05"],"capabilities":{"tools":{}}}`)

func (h *Handler) initialize(w http.ResponseWriter, m envelope) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(m.Params, &p); err != nil {
		h.writeError(w, http.StatusOK, m.ID, codeInvalidParams, "initialize: params must be an object")
		return
	}
	version := Versions[0]
	if slices.Contains(Versions, p.ProtocolVersion) {
		version = p.ProtocolVersion
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	h.mu.Lock()
	full := len(h.sessions) >= h.opts.MaxSessions
	if !full {
		h.sessions[id] = struct{}{}
	}
	h.mu.Unlock()
	if full {
		h.log.Warn("initialize refused: too many open sessions", "max", h.opts.MaxSessions)
		http.Error(w, "too many open sessions", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set(hdrSession, id)
	res := `{"capabilities":{"tools":{}},"protocolVersion":"` + version + `","serverInfo":{"name":"fast-upstream","version":"1.0.0"}}`
	h.writeResult(w, m.ID, []byte(res))
}

func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(hdrSession)
	if id == "" {
		http.Error(w, "missing "+hdrSession, http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	_, known := h.sessions[id]
	delete(h.sessions, id)
	h.mu.Unlock()
	if !known {
		http.Error(w, "unknown session", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) call(w http.ResponseWriter, m envelope) {
	var p callParams
	if err := json.Unmarshal(m.Params, &p); err != nil {
		h.writeError(w, http.StatusOK, m.ID, codeInvalidParams, "tools/call: params must be an object with a name")
		return
	}
	t, ok := h.tools[p.Name]
	if !ok {
		h.writeError(w, http.StatusOK, m.ID, codeInvalidParams, "unknown tool")
		return
	}
	if len(p.Arguments) == 0 || string(p.Arguments) == "null" {
		p.Arguments = json.RawMessage(`{}`)
	}
	sp := h.slices.Get().(*[]byte)
	res, problem := t.result((*sp)[:0], p.Arguments)
	if problem != "" {
		text, _ := json.Marshal(problem)
		res = append(append(append(res[:0], `{"content":[{"type":"text","text":`...), text...), `}],"isError":true}`...)
	}
	h.writeResult(w, m.ID, res)
	h.release(sp, res)
}

// maxPooled is the largest buffer kept for reuse.
const maxPooled = 64 << 10

// release returns a slice taken from h.slices, grown to b, for reuse.
func (h *Handler) release(sp *[]byte, b []byte) {
	if cap(b) <= maxPooled {
		*sp = b[:0]
		h.slices.Put(sp)
	}
}

// writeResult answers request id with result.
func (h *Handler) writeResult(w http.ResponseWriter, id json.RawMessage, result []byte) {
	h.write(w, http.StatusOK, id, "result", result)
}

// writeError answers with a JSON-RPC error. An error to a request that
// was not understood goes out as plain JSON with status, as the Go SDK
// sends it.
func (h *Handler) writeError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	if !utf8.ValidString(msg) {
		msg = "error"
	}
	text, _ := json.Marshal(msg)
	obj := append([]byte(`{"code":`), strconv.Itoa(code)...)
	obj = append(append(append(obj, `,"message":`...), text...), '}')
	if status != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(message(nil, id, "error", obj))
		return
	}
	h.write(w, status, id, "error", obj)
}

// write sends one JSON-RPC response, as JSON or as an event stream.
func (h *Handler) write(w http.ResponseWriter, status int, id json.RawMessage, member string, value []byte) {
	sp := h.slices.Get().(*[]byte)
	out := (*sp)[:0]
	defer func() { h.release(sp, out) }()
	hdr := w.Header()
	if h.opts.JSON {
		hdr["Content-Type"] = jsonType
		out = message(out, id, member, value)
		hdr["Content-Length"] = []string{strconv.Itoa(len(out))}
		w.WriteHeader(status)
		_, _ = w.Write(out)
		return
	}
	// As the Go SDK streams: an event stream, written and flushed, so it
	// goes out chunked.
	hdr["Content-Type"] = sseType
	hdr["Cache-Control"] = noCache
	w.WriteHeader(status)
	out = append(out, "event: message\ndata: "...)
	out = message(out, id, member, value)
	out = append(out, "\n\n"...)
	_, _ = w.Write(out)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// Shared header values (never modified).
var (
	jsonType = []string{"application/json"}
	sseType  = []string{"text/event-stream"}
	noCache  = []string{"no-cache, no-transform"}
)

// message appends {"jsonrpc":"2.0","id":<id>,"<member>":<value>} to dst;
// a missing id is null.
func message(dst []byte, id json.RawMessage, member string, value []byte) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"`...)
	dst = append(dst, member...)
	dst = append(dst, `":`...)
	dst = append(dst, value...)
	return append(dst, '}')
}
