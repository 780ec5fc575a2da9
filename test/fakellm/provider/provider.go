// Package provider is a fake LLM provider for tests: it answers OpenAI's
// Chat Completions and Responses and Anthropic's Messages in each API's
// real shapes, as complete answers and as event streams (with the usage
// chunks each API sends), and records what it received and the usage it
// reported, so a test can compare the gateway's audit records with it.
//
// What it answers is scripted by the last user message:
//
//   - "weather" with tools offered: a call of the first tool
//     (get_weather with {"city":"Oslo"});
//   - "chunks=N": N words of text (default 5);
//   - "break": a stream that stops after half its chunks, the connection
//     cut; "fail mid-stream": one that sends the API's error event there
//     and ends;
//   - "status=NNN": that HTTP status, with the API's error body;
//   - "stamp": each streamed Chat Completions chunk's text is " @" and the
//     Unix time in nanoseconds it was sent at (for benchmarks);
//   - anything else: "Hello from <model>" and some words.
//
// Usage is deterministic: input tokens are 10 plus the request body's
// length over 16 (cache reads a quarter of them, on Anthropic cache writes
// 3), output tokens 2 per word, reasoning 1 per OpenAI answer.
package provider

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Handler.
type Options struct {
	// OpenAIKey and AnthropicKey are the API keys it accepts (Bearer on
	// the OpenAI paths, x-api-key on Anthropic's); empty accepts none.
	OpenAIKey, AnthropicKey string
	// ChunkDelay is the pause before each streamed chunk after the first.
	ChunkDelay time.Duration
}

// Usage is what the provider reported for one answer, in its own terms
// normalized: input counts every input token.
type Usage struct {
	Input, Cached, CacheWrite, Output, Reasoning int64
}

// Report is one request the provider answered.
type Report struct {
	API string `json:"api"`
	// Model is the model the request named.
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	// IncludeUsage is Chat Completions' stream_options.include_usage as
	// received.
	IncludeUsage bool `json:"include_usage"`
	// MaxTokens is the output limit as received (0: none).
	MaxTokens        int64  `json:"max_tokens"`
	AnthropicVersion string `json:"anthropic_version,omitempty"`
	// Usage is what it reported; Broken that the stream was cut before
	// the usage was sent.
	Usage    Usage `json:"usage"`
	Broken   bool  `json:"broken"`
	ToolCall bool  `json:"tool_call"`
	Status   int   `json:"status"`
}

// Handler is the fake provider. Safe for concurrent use.
type Handler struct {
	opts    Options
	mu      sync.Mutex
	reports []Report
}

// New returns a fake provider.
func New(opts Options) *Handler { return &Handler{opts: opts} }

// Reports returns what it answered so far, in order.
func (h *Handler) Reports() []Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Report(nil), h.reports...)
}

func (h *Handler) record(r Report) {
	h.mu.Lock()
	h.reports = append(h.reports, r)
	h.mu.Unlock()
}

// ServeHTTP implements http.Handler. GET /fake/reports lists the reports
// as JSON.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/fake/reports" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.Reports())
		return
	}
	var api string
	switch r.URL.Path {
	case "/v1/chat/completions":
		api = "chat"
	case "/v1/responses":
		api = "responses"
	case "/v1/messages":
		api = "messages"
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(api, r) {
		apiError(w, api, http.StatusUnauthorized, "invalid api key")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		apiError(w, api, http.StatusBadRequest, "unreadable body")
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil || req.Model == "" {
		apiError(w, api, http.StatusBadRequest, "invalid request")
		return
	}
	rep := Report{API: api, Model: req.Model, Stream: req.Stream, AnthropicVersion: r.Header.Get("Anthropic-Version")}
	if req.StreamOptions != nil {
		rep.IncludeUsage = req.StreamOptions.IncludeUsage
	}
	rep.MaxTokens = max(req.MaxTokens, req.MaxCompletionTokens, req.MaxOutputTokens)
	prompt := req.lastUserText()
	if m := statusRE.FindStringSubmatch(prompt); m != nil {
		code, _ := strconv.Atoi(m[1])
		rep.Status = code
		h.record(rep)
		apiError(w, api, code, "scripted failure")
		return
	}
	a := script(api, req, prompt, len(body))
	rep.ToolCall = a.tool
	rep.Usage = a.usage
	rep.Status = http.StatusOK
	if !req.Stream {
		h.record(rep)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_fake")
		_, _ = w.Write(complete(api, req.Model, a))
		return
	}
	rep.Broken = a.broken || a.failing
	if api == "chat" && !rep.IncludeUsage {
		rep.Usage = Usage{} // a Chat Completions stream reports none unless asked
	}
	h.record(rep)
	h.stream(w, api, req, a)
}

var statusRE = regexp.MustCompile(`status=(\d{3})`)

func (h *Handler) authorized(api string, r *http.Request) bool {
	if api == "messages" {
		return h.opts.AnthropicKey != "" && r.Header.Get("X-Api-Key") == h.opts.AnthropicKey
	}
	return h.opts.OpenAIKey != "" && r.Header.Get("Authorization") == "Bearer "+h.opts.OpenAIKey
}

// request is what the fake reads of a request of any of the APIs.
type request struct {
	Model               string            `json:"model"`
	Stream              bool              `json:"stream"`
	MaxTokens           int64             `json:"max_tokens"`
	MaxCompletionTokens int64             `json:"max_completion_tokens"`
	MaxOutputTokens     int64             `json:"max_output_tokens"`
	Messages            []message         `json:"messages"`
	Input               json.RawMessage   `json:"input"`
	Tools               []json.RawMessage `json:"tools"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// lastUserText is the text of the request's last user message.
func (r request) lastUserText() string {
	msgs := r.Messages
	if len(r.Input) > 0 {
		var s string
		if json.Unmarshal(r.Input, &s) == nil {
			return s
		}
		_ = json.Unmarshal(r.Input, &msgs)
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		var s string
		if json.Unmarshal(msgs[i].Content, &s) == nil {
			return s
		}
		var parts []struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(msgs[i].Content, &parts)
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return b.String()
	}
	return ""
}

// answer is what the fake says.
type answer struct {
	words  []string
	tool   bool
	broken bool
	// stamp: each streamed Chat Completions word is " @<unix ns>" of
	// when it was sent ("stamp" in the prompt; for benchmarks).
	stamp bool
	// failing: a stream that sends the API's error event after half its
	// chunks and ends ("fail mid-stream" in the prompt).
	failing bool
	usage   Usage
	api     string
}

var chunksRE = regexp.MustCompile(`chunks=(\d+)`)

func script(api string, req request, prompt string, size int) answer {
	a := answer{api: api}
	n := 5
	if m := chunksRE.FindStringSubmatch(prompt); m != nil {
		n, _ = strconv.Atoi(m[1])
		n = min(max(n, 1), 100_000)
	}
	a.words = make([]string, n)
	a.words[0] = "Hello from " + req.Model + "."
	for i := 1; i < n; i++ {
		a.words[i] = " w" + strconv.Itoa(i)
	}
	a.tool = strings.Contains(prompt, "weather") && len(req.Tools) > 0
	if a.tool {
		a.words = nil
	}
	a.broken = strings.Contains(prompt, "break")
	a.stamp = strings.Contains(prompt, "stamp")
	a.failing = strings.Contains(prompt, "fail mid-stream")
	in := int64(10 + size/16)
	a.usage = Usage{Input: in, Cached: in / 4, Output: int64(2 * max(len(a.words), 1))}
	if api == "messages" {
		a.usage.CacheWrite = 3
	} else {
		a.usage.Reasoning = 1
	}
	return a
}

// apiError writes an error in the API's shape.
func apiError(w http.ResponseWriter, api string, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if api == "messages" {
		fmt.Fprintf(w, `{"type":"error","error":{"type":"api_error","message":%q}}`, msg)
		return
	}
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"server_error","param":null,"code":null}}`, msg)
}
