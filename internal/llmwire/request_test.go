package llmwire_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/llmwire"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		api  llmwire.API
		body string
		want llmwire.Request
		err  string
	}{
		{
			name: "chat with tools, n and a limit",
			api:  llmwire.ChatCompletions,
			body: `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"n":2,"max_tokens":100,"max_completion_tokens":300,
				"stream_options":{"include_usage":true},"tools":[{"type":"function","function":{"name":"get_weather"}},{"type":"function","function":{"name":"get_weather"}}],
				"functions":[{"name":"legacy"}]}`,
			want: llmwire.Request{API: llmwire.ChatCompletions, Model: "openai/gpt-4o", Stream: true, MaxTokens: 300, Choices: 2, IncludeUsage: true, Tools: []string{"get_weather", "legacy"}},
		},
		{
			name: "chat without limit or stream",
			api:  llmwire.ChatCompletions,
			body: `{"model":"m","messages":[],"stream":null,"max_tokens":null}`,
			want: llmwire.Request{API: llmwire.ChatCompletions, Model: "m", Choices: 1},
		},
		{
			name: "responses with built-in and function tools",
			api:  llmwire.Responses,
			body: `{"model":"fast","input":"hi","max_output_tokens":50,"tools":[{"type":"web_search_preview"},{"type":"function","name":"lookup"},{"type":"mcp","server_label":"x"}]}`,
			want: llmwire.Request{API: llmwire.Responses, Model: "fast", MaxTokens: 50, Choices: 1, Tools: []string{"web_search_preview", "lookup", "mcp"}},
		},
		{
			name: "messages",
			api:  llmwire.Messages,
			body: `{"model":"anthropic/claude","max_tokens":1024,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"calc","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}]}`,
			want: llmwire.Request{API: llmwire.Messages, Model: "anthropic/claude", MaxTokens: 1024, Choices: 1, Tools: []string{"calc", "web_search"}},
		},
		{name: "no model", api: llmwire.ChatCompletions, body: `{"messages":[]}`, err: "model"},
		{name: "empty model", api: llmwire.ChatCompletions, body: `{"model":""}`, err: "model"},
		{name: "model not a string", api: llmwire.Messages, body: `{"model":3}`, err: "model"},
		{name: "model twice", api: llmwire.ChatCompletions, body: `{"model":"a","model":"b"}`, err: "twice"},
		{name: "not an object", api: llmwire.ChatCompletions, body: `["model"]`, err: "JSON object"},
		{name: "trailing data", api: llmwire.ChatCompletions, body: `{"model":"a"} {}`, err: "JSON object"},
		{name: "negative limit", api: llmwire.Messages, body: `{"model":"a","max_tokens":-1}`, err: "max_tokens"},
		{name: "fractional limit", api: llmwire.Responses, body: `{"model":"a","max_output_tokens":1.5}`, err: "max_output_tokens"},
		{name: "huge n", api: llmwire.ChatCompletions, body: `{"model":"a","n":100000}`, err: "n:"},
		{name: "stream not a bool", api: llmwire.ChatCompletions, body: `{"model":"a","stream":"yes"}`, err: "stream"},
		{name: "tools not an array", api: llmwire.ChatCompletions, body: `{"model":"a","tools":{}}`, err: "tools"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := llmwire.ParseRequest(tt.api, []byte(tt.body))
			if tt.err != "" {
				var re *llmwire.RequestError
				if err == nil || !errors.As(err, &re) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want a RequestError mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := llmwire.Request{API: got.API, Model: got.Model, Stream: got.Stream, MaxTokens: got.MaxTokens, Choices: got.Choices, IncludeUsage: got.IncludeUsage, Tools: got.Tools}
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestEditKeepsEveryOtherByte(t *testing.T) {
	tests := []struct {
		name string
		api  llmwire.API
		body string
		edit llmwire.Edit
		want string
	}{
		{
			name: "model only",
			api:  llmwire.Messages,
			body: `{ "model" : "anthropic/claude",  "max_tokens":5, "x":{"model":"inner"} }`,
			edit: llmwire.Edit{Model: "claude-sonnet"},
			want: `{ "model" : "claude-sonnet",  "max_tokens":5, "x":{"model":"inner"} }`,
		},
		{
			name: "usage asked where there were no stream options, and a limit added",
			api:  llmwire.ChatCompletions,
			body: `{"model":"openai/gpt","stream":true,"messages":[]}`,
			edit: llmwire.Edit{Model: "gpt", IncludeUsage: true, LimitField: "max_completion_tokens", LimitTokens: 4096},
			want: `{"model":"gpt","stream":true,"messages":[],"stream_options":{"include_usage":true},"max_completion_tokens":4096}`,
		},
		{
			name: "usage asked in existing stream options",
			api:  llmwire.ChatCompletions,
			body: `{"model":"a","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":false}}`,
			edit: llmwire.Edit{Model: "b", IncludeUsage: true},
			want: `{"model":"b","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}`,
		},
		{
			name: "null stream options",
			api:  llmwire.ChatCompletions,
			body: `{"model":"a","stream_options":null}`,
			edit: llmwire.Edit{Model: "b", IncludeUsage: true},
			want: `{"model":"b","stream_options":{"include_usage":true}}`,
		},
		{
			name: "model with characters to escape",
			api:  llmwire.Responses,
			body: `{"model":"x"}`,
			edit: llmwire.Edit{Model: `a"b`},
			want: `{"model":"a\"b"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := llmwire.ParseRequest(tt.api, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Edit(tt.edit)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Error("not valid JSON")
			}
		})
	}
}

func TestInputLeavesOutTheModelAndBlobs(t *testing.T) {
	blob := strings.Repeat("QUJD", 100)
	body := `{"model":"openai/gpt-4o","messages":[{"role":"system","content":"be brief"},
		{"role":"user","content":[{"type":"text","text":"what is in this picture?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + blob + `"}}]}],
		"metadata":{"model":"kept: not the top-level model"},"temperature":0.2,"x":[1,true,null,{"y":"z"}]}`
	r, err := llmwire.ParseRequest(llmwire.ChatCompletions, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	in := r.Input()
	if strings.Contains(in.Text, "openai/gpt-4o") || strings.Contains(in.Text, blob) {
		t.Errorf("input text %q holds the model or the blob", in.Text)
	}
	for _, want := range []string{"be brief", "what is in this picture?", "kept: not the top-level model", "image_url", "z"} {
		if !strings.Contains(in.Text, want) {
			t.Errorf("input text %q lacks %q", in.Text, want)
		}
	}
	if in.Blobs != 1 {
		t.Errorf("blobs = %d, want 1", in.Blobs)
	}
}
