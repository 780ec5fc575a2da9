package llmwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Bounds on what a request may ask for, far above any real request.
const (
	// MaxModelName bounds the model a request names.
	MaxModelName = 256
	// MaxOutputTokens bounds an output limit.
	MaxOutputTokens = 100_000_000
	// MaxChoices bounds Chat Completions' n.
	MaxChoices = 128
	// MaxTools bounds the tool names Request.Tools keeps; MaxToolName
	// each name's length.
	MaxTools    = 128
	MaxToolName = 128
)

// Request is what the gateway reads of a request body.
type Request struct {
	API API
	// Model is the model as the caller named it.
	Model string
	// Stream is set when the caller asked for an event stream.
	Stream bool
	// MaxTokens is the output limit the request sets (for Chat
	// Completions the larger of max_completion_tokens and max_tokens); 0
	// when it sets none.
	MaxTokens int64
	// Choices is how many alternatives the request asks for (Chat
	// Completions' n; 1 otherwise).
	Choices int64
	// IncludeUsage is Chat Completions' stream_options.include_usage.
	IncludeUsage bool
	// Tools names the tools the request offers the model: function names,
	// and for the providers' built-in tools their type (Responses) or name
	// (Messages). At most MaxTools, each at most MaxToolName bytes.
	Tools []string

	body    []byte
	members []member
}

// RequestError is a request the gateway cannot read. Its message is safe
// to send to the caller.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

func invalid(format string, args ...any) *RequestError {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

// ParseRequest reads body, a request of api. body is kept (not copied)
// for Edit and Text.
func ParseRequest(api API, body []byte) (*Request, error) {
	ms, err := members(body)
	if err != nil {
		if errors.Is(err, errDuplicate) {
			return nil, invalid("the request body is not valid: %v", err)
		}
		return nil, invalid("the request body must be one JSON object")
	}
	r := &Request{API: api, Choices: 1, body: body, members: ms}
	raw := find(body, ms, "model")
	if raw == nil || json.Unmarshal(raw, &r.Model) != nil || r.Model == "" {
		return nil, invalid("model: a model name (a non-empty string) is required")
	}
	if len(r.Model) > MaxModelName {
		return nil, invalid("model: longer than %d bytes", MaxModelName)
	}
	if raw := find(body, ms, "stream"); raw != nil && string(raw) != "null" {
		if json.Unmarshal(raw, &r.Stream) != nil {
			return nil, invalid("stream: must be true or false")
		}
	}
	var limits []string
	switch api {
	case ChatCompletions:
		limits = []string{"max_completion_tokens", "max_tokens"}
		if raw := find(body, ms, "n"); raw != nil && string(raw) != "null" {
			n, err := count(raw, MaxChoices)
			if err != nil {
				return nil, invalid("n: %v", err)
			}
			r.Choices = n
		}
		if raw := find(body, ms, "stream_options"); raw != nil && string(raw) != "null" {
			var so struct {
				IncludeUsage *bool `json:"include_usage"`
			}
			if json.Unmarshal(raw, &so) != nil {
				return nil, invalid("stream_options: must be an object")
			}
			r.IncludeUsage = so.IncludeUsage != nil && *so.IncludeUsage
		}
	case Responses:
		limits = []string{"max_output_tokens"}
	case Messages:
		limits = []string{"max_tokens"}
	default:
		return nil, invalid("unknown API")
	}
	for _, name := range limits {
		raw := find(body, ms, name)
		if raw == nil || string(raw) == "null" {
			continue
		}
		n, err := count(raw, MaxOutputTokens)
		if err != nil {
			return nil, invalid("%s: %v", name, err)
		}
		r.MaxTokens = max(r.MaxTokens, n)
	}
	if raw := find(body, ms, "tools"); raw != nil && string(raw) != "null" {
		tools, err := toolNames(api, raw)
		if err != nil {
			return nil, invalid("tools: %v", err)
		}
		r.Tools = tools
	}
	if api == ChatCompletions {
		// The deprecated functions parameter offers tools too.
		if raw := find(body, ms, "functions"); raw != nil && string(raw) != "null" {
			var fs []struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(raw, &fs) != nil {
				return nil, invalid("functions: must be an array of objects")
			}
			for _, f := range fs {
				r.Tools = addTool(r.Tools, f.Name)
			}
		}
	}
	return r, nil
}

// count reads a positive integer of at most limit.
func count(raw []byte, limit int64) (int64, error) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 1 || n > limit {
		return 0, fmt.Errorf("must be a whole number from 1 to %d", limit)
	}
	return n, nil
}

// toolNames reads the names of the tools array of api's request.
func toolNames(api API, raw []byte) ([]string, error) {
	var tools []json.RawMessage
	if err := json.Unmarshal(raw, &tools); err != nil {
		return nil, errors.New("must be an array")
	}
	var out []string
	for _, t := range tools {
		var tool struct {
			Type     string `json:"type"`
			Name     string `json:"name"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
			Custom struct {
				Name string `json:"name"`
			} `json:"custom"`
			ServerLabel string `json:"server_label"`
		}
		if err := json.Unmarshal(t, &tool); err != nil {
			return nil, errors.New("each tool must be an object")
		}
		var name string
		switch {
		case api == ChatCompletions && tool.Function.Name != "":
			name = tool.Function.Name
		case api == ChatCompletions && tool.Custom.Name != "":
			name = tool.Custom.Name
		case api == Responses && (tool.Type == "function" || tool.Type == "custom"):
			name = tool.Name
		case api == Responses:
			// A built-in tool (web_search, file_search, mcp, …) by its type.
			name = tool.Type
		case api == Messages && tool.Name != "":
			name = tool.Name
		default:
			name = tool.Type
		}
		out = addTool(out, name)
	}
	return out, nil
}

// addTool adds name to tools within the bounds (an empty name is left
// out; a repeat is kept once).
func addTool(tools []string, name string) []string {
	if name == "" || len(tools) >= MaxTools {
		return tools
	}
	name = truncate(name, MaxToolName)
	for _, t := range tools {
		if t == name {
			return tools
		}
	}
	return append(tools, name)
}

// Edit is what the gateway changes in a request before it forwards it.
type Edit struct {
	// Model replaces the model the caller named (the provider's own id).
	Model string
	// IncludeUsage sets stream_options.include_usage (Chat Completions).
	IncludeUsage bool
	// LimitField, when set, adds an output limit of LimitTokens under
	// that name (the request has none).
	LimitField  string
	LimitTokens int64
}

// Edit returns the request body with e applied; every other byte is kept.
func (r *Request) Edit(e Edit) ([]byte, error) {
	model, err := json.Marshal(e.Model)
	if err != nil {
		return nil, err
	}
	out, err := setMember(r.body, "model", model)
	if err != nil {
		return nil, err
	}
	if e.IncludeUsage {
		ms, err := members(out)
		if err != nil {
			return nil, err
		}
		so := find(out, ms, "stream_options")
		if so == nil || string(so) == "null" {
			so = []byte(`{}`)
		}
		so, err = setMember(so, "include_usage", []byte("true"))
		if err != nil {
			return nil, invalid("stream_options: must be an object")
		}
		if out, err = setMember(out, "stream_options", so); err != nil {
			return nil, err
		}
	}
	if e.LimitField != "" {
		if out, err = setMember(out, e.LimitField, strconv.AppendInt(nil, e.LimitTokens, 10)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setMember returns a copy of object b with key's value replaced by value
// (valid JSON), or the member added at the end when b has none.
func setMember(b []byte, key string, value []byte) ([]byte, error) {
	ms, err := members(b)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.key == key {
			out := make([]byte, 0, len(b)-(m.end-m.start)+len(value))
			out = append(out, b[:m.start]...)
			out = append(out, value...)
			return append(out, b[m.end:]...), nil
		}
	}
	end := bytes.LastIndexByte(b, '}')
	k, err := json.Marshal(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(k)+len(value)+2)
	out = append(out, b[:end]...)
	if len(ms) > 0 {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, value...)
	return append(out, b[end:]...), nil
}
