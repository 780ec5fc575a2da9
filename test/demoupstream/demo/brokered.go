package demo

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// What Options.Content and Options.StreamingTools add beyond tools and
// reads, for a broker to relay: argument completions, resource
// subscriptions with updates, log messages at every level, and
// cancellation in both directions.
const (
	// ToolLog sends one log message at each of LogLevels, then answers.
	ToolLog = "log"
	// ToolWait waits until the client cancels it (or WaitLimit passes),
	// first sending progress 0 when the client asked for progress; a
	// cancellation is counted (GET /state).
	ToolWait = "wait"
	// ToolAskBriefly asks the client to confirm (an elicitation) and
	// withdraws the question after a moment (notifications/cancelled),
	// then answers "withdrawn" unless an answer came first.
	ToolAskBriefly = "ask_briefly"
	// WaitLimit bounds ToolWait.
	WaitLimit = 20 * time.Second
	// askBrieflyFor is how long ToolAskBriefly waits for an answer.
	askBrieflyFor = 300 * time.Millisecond
)

// LogLevels are the levels ToolLog sends a message at, lowest first.
var LogLevels = []mcp.LoggingLevel{"debug", "info", "warning", "error"}

// Completions of Options.Content: the summarize prompt's topic argument
// and the invoice template's id.
var (
	topics     = []string{"invoices", "interest", "payments", "weather"}
	invoiceIDs = []string{"inv-1", "inv-2", "inv-3"}
)

// State is what the demo server saw beyond tool calls (GET /state).
type State struct {
	// Subscribed are the resource URIs some session follows, sorted.
	Subscribed []string `json:"subscribed"`
	// Cancelled counts ToolWait calls that ended by cancellation.
	Cancelled int `json:"cancelled"`
}

// brokered is the demo's state for the methods beyond tools. Safe for
// concurrent use.
type brokered struct {
	mu         sync.Mutex
	subscribed map[string]int // URI → subscribing sessions
	cancelled  int
}

func (b *brokered) state() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := State{Subscribed: []string{}, Cancelled: b.cancelled}
	for uri := range b.subscribed {
		s.Subscribed = append(s.Subscribed, uri)
	}
	slices.Sort(s.Subscribed)
	return s
}

// contentOptions sets the server options that Options.Content needs:
// completions and resource subscriptions.
func (b *brokered) contentOptions(o *mcp.ServerOptions) {
	o.CompletionHandler = complete
	o.SubscribeHandler = func(_ context.Context, req *mcp.SubscribeRequest) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.subscribed == nil {
			b.subscribed = map[string]int{}
		}
		b.subscribed[req.Params.URI]++
		return nil
	}
	o.UnsubscribeHandler = func(_ context.Context, req *mcp.UnsubscribeRequest) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.subscribed[req.Params.URI]--; b.subscribed[req.Params.URI] <= 0 {
			delete(b.subscribed, req.Params.URI)
		}
		return nil
	}
}

// complete suggests values for the summarize prompt's topic and the
// invoice template's id that start with what the client typed.
func complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	var from []string
	switch {
	case req.Params.Ref.Type == "ref/prompt" && req.Params.Ref.Name == PromptSummarize && req.Params.Argument.Name == "topic":
		from = topics
	case req.Params.Ref.Type == "ref/resource" && req.Params.Ref.URI == TemplateInvoice && req.Params.Argument.Name == "id":
		from = invoiceIDs
	}
	values := []string{}
	for _, v := range from {
		if strings.HasPrefix(v, req.Params.Argument.Value) {
			values = append(values, v)
		}
	}
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: values, Total: len(values)}}, nil
}

// addBrokeredTools registers log, wait and ask_briefly.
func (b *brokered) addBrokeredTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name: ToolLog, Description: "Send a log message at each level (debug, info, warning, error), then answer.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		for _, level := range LogLevels {
			if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: level, Logger: "demo", Data: "a " + string(level) + " message"}); err != nil {
				return nil, nil, err
			}
		}
		return textResult("logged"), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{
		Name: ToolWait, Description: "Wait until cancelled (at most 20 seconds).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		// Progress 0 tells a client that asked for progress that the wait
		// has begun (so that it can cancel a call that surely started).
		if token := req.Params.GetProgressToken(); token != nil {
			if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Message: "waiting"}); err != nil {
				return nil, nil, err
			}
		}
		t := time.NewTimer(WaitLimit)
		defer t.Stop()
		select {
		case <-ctx.Done():
			b.mu.Lock()
			b.cancelled++
			b.mu.Unlock()
			return nil, nil, ctx.Err()
		case <-t.C:
			return textResult("waited"), nil, nil
		}
	})
	mcp.AddTool(s, &mcp.Tool{
		Name: ToolAskBriefly, Description: "Ask the user to confirm, and withdraw the question if no answer comes at once.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		actx, cancel := context.WithTimeout(ctx, askBrieflyFor)
		defer cancel()
		res, err := req.Session.Elicit(actx, &mcp.ElicitParams{
			Message: "Confirm at once?",
			RequestedSchema: map[string]any{
				"type":       "object",
				"properties": map[string]any{"confirm": map[string]any{"type": "boolean"}},
			},
		})
		switch {
		case actx.Err() != nil && ctx.Err() == nil:
			return textResult("withdrawn"), nil, nil
		case err != nil:
			return errorResult("elicitation failed: " + err.Error()), nil, nil //nolint:nilerr // a failed elicitation is the tool's result
		}
		return textResult("answered: " + res.Action), nil, nil
	})
}

// serveState is GET /state.
func (b *brokered) serveState(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(b.state())
}

// serveUpdated is POST /admin/resources/updated with {"uri": "…"}: the
// server tells the sessions that subscribed to uri that it changed.
func serveUpdated(s *mcp.Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			URI string `json:"uri"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || body.URI == "" {
			http.Error(w, `body must be {"uri": "…"}`, http.StatusBadRequest)
			return
		}
		if err := s.ResourceUpdated(r.Context(), &mcp.ResourceUpdatedNotificationParams{URI: body.URI}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
