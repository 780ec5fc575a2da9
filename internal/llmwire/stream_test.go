package llmwire_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/llmwire"
)

// Streams as the providers send them (abridged to the fields that matter).
const (
	chatStream = `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}

data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hello"}}],"usage":null}

data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"get_weather","arguments":"{\"city\""}}]}}],"usage":null}

data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":42,"completion_tokens":7,"total_tokens":49,"prompt_tokens_details":{"cached_tokens":10},"completion_tokens_details":{"reasoning_tokens":2}}}

data: [DONE]

`
	responsesStream = `event: response.created
data: {"type":"response.created","response":{"id":"r1","model":"gpt-4o-mini","usage":null}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","item_id":"m1","delta":"Hi there"}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","delta":"{}"}

event: response.completed
data: {"type":"response.completed","response":{"id":"r1","model":"gpt-4o-mini","usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":0},"output_tokens":12,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":42}}}

`
	messagesStream = `event: message_start
data: {"type":"message_start","message":{"id":"m1","model":"claude-sonnet-4-5","usage":{"input_tokens":25,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}

event: message_delta
data: {"type":"message_delta","delta":{},"usage":{"output_tokens":20}}

event: message_stop
data: {"type":"message_stop"}

`
)

type observed struct {
	kinds []llmwire.FrameKind
	raw   strings.Builder
}

func observe(t *testing.T, api llmwire.API, stream string) (*llmwire.Stream, observed) {
	t.Helper()
	s := llmwire.NewStream(api)
	fr := llmwire.NewFrameReader(strings.NewReader(stream), 1<<20)
	var o observed
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return s, o
		}
		if err != nil {
			t.Fatalf("frame: %v", err)
		}
		o.raw.Write(f.Raw)
		o.kinds = append(o.kinds, s.Observe(f))
	}
}

func TestStreamsYieldTheProvidersUsage(t *testing.T) {
	tests := []struct {
		name      string
		api       llmwire.API
		stream    string
		want      llmwire.Usage
		wantText  string
		lastKinds []llmwire.FrameKind
	}{
		{
			name: "chat", api: llmwire.ChatCompletions, stream: chatStream,
			want:      llmwire.Usage{InputTokens: 42, CachedInputTokens: 10, OutputTokens: 7, ReasoningTokens: 2, Model: "gpt-4o-2024-08-06"},
			wantText:  `Helloget_weather{"city"`,
			lastKinds: []llmwire.FrameKind{llmwire.FrameUsage, llmwire.FrameEnd},
		},
		{
			name: "responses", api: llmwire.Responses, stream: responsesStream,
			want:      llmwire.Usage{InputTokens: 30, OutputTokens: 12, Model: "gpt-4o-mini"},
			wantText:  "Hi there{}",
			lastKinds: []llmwire.FrameKind{llmwire.FrameContent, llmwire.FrameEnd},
		},
		{
			// message_delta's usage is cumulative: the last one counts,
			// not the sum.
			name: "messages", api: llmwire.Messages, stream: messagesStream,
			want:      llmwire.Usage{InputTokens: 130, CachedInputTokens: 100, CacheWriteTokens: 5, OutputTokens: 20, Model: "claude-sonnet-4-5"},
			wantText:  `Bonjour{"a":1}`,
			lastKinds: []llmwire.FrameKind{llmwire.FrameContent, llmwire.FrameEnd},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, o := observe(t, tt.api, tt.stream)
			if o.raw.String() != tt.stream {
				t.Errorf("frames do not add up to the stream as sent")
			}
			u, in, out := s.Usage()
			if u != tt.want || !in || !out {
				t.Errorf("usage %+v (input known %v, output known %v), want %+v", u, in, out, tt.want)
			}
			if !s.Ended() || s.Failed() {
				t.Errorf("ended %v failed %v", s.Ended(), s.Failed())
			}
			if s.Text() != tt.wantText {
				t.Errorf("text %q, want %q", s.Text(), tt.wantText)
			}
			got := o.kinds[len(o.kinds)-len(tt.lastKinds):]
			for i := range got {
				if got[i] != tt.lastKinds[i] {
					t.Errorf("last frame kinds %v, want %v", got, tt.lastKinds)
					break
				}
			}
		})
	}
}

func TestBrokenStreamsSayWhatIsKnown(t *testing.T) {
	// Cut each stream just before its usage arrives.
	cut := func(s, before string) string { return s[:strings.Index(s, before)] }
	t.Run("chat", func(t *testing.T) {
		s, _ := observe(t, llmwire.ChatCompletions, cut(chatStream, `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],`))
		if _, in, out := s.Usage(); in || out || s.Ended() {
			t.Errorf("a chat stream cut before its usage: input known %v, output known %v, ended %v", in, out, s.Ended())
		}
	})
	t.Run("messages", func(t *testing.T) {
		s, _ := observe(t, llmwire.Messages, cut(messagesStream, "event: message_delta"))
		u, in, out := s.Usage()
		if !in || out || u.InputTokens != 130 || s.Ended() {
			t.Errorf("a message stream cut before message_delta: %+v, input known %v, output known %v", u, in, out)
		}
	})
	t.Run("error event", func(t *testing.T) {
		s, o := observe(t, llmwire.Messages, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n")
		if !s.Failed() || o.kinds[0] != llmwire.FrameError {
			t.Errorf("error event not seen: %v", o.kinds)
		}
	})
}

func TestFrameReader(t *testing.T) {
	t.Run("line endings and comments", func(t *testing.T) {
		in := ": keep-alive\r\n\r\nevent: a\rdata: 1\rdata: 2\r\r\ndata: x\n\n"
		fr := llmwire.NewFrameReader(strings.NewReader(in), 1024)
		var raw strings.Builder
		var datas []string
		for {
			f, err := fr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			raw.Write(f.Raw)
			if f.Data != nil {
				datas = append(datas, f.Event+":"+string(f.Data))
			}
		}
		if raw.String() != in {
			t.Errorf("raw %q, want %q", raw.String(), in)
		}
		if strings.Join(datas, "|") != "a:1\n2|:x" {
			t.Errorf("data %q", datas)
		}
	})
	t.Run("cut inside an event", func(t *testing.T) {
		fr := llmwire.NewFrameReader(strings.NewReader("data: 1\n\ndata: 2\n"), 1024)
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
		if _, err := fr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want unexpected EOF", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		fr := llmwire.NewFrameReader(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 50)
		if _, err := fr.Next(); !errors.Is(err, llmwire.ErrFrameTooLarge) {
			t.Errorf("err = %v, want ErrFrameTooLarge", err)
		}
	})
}

func TestParseUsage(t *testing.T) {
	tests := []struct {
		name string
		api  llmwire.API
		body string
		want llmwire.Usage
		ok   bool
	}{
		{"chat", llmwire.ChatCompletions, `{"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}`,
			llmwire.Usage{InputTokens: 10, CachedInputTokens: 4, OutputTokens: 5, ReasoningTokens: 1, Model: "gpt-4o"}, true},
		{"responses", llmwire.Responses, `{"model":"o3","usage":{"input_tokens":9,"output_tokens":90,"output_tokens_details":{"reasoning_tokens":80}}}`,
			llmwire.Usage{InputTokens: 9, OutputTokens: 90, ReasoningTokens: 80, Model: "o3"}, true},
		{"messages", llmwire.Messages, `{"model":"claude","usage":{"input_tokens":3,"cache_creation_input_tokens":2,"cache_read_input_tokens":1,"output_tokens":4}}`,
			llmwire.Usage{InputTokens: 6, CachedInputTokens: 1, CacheWriteTokens: 2, OutputTokens: 4, Model: "claude"}, true},
		{"negative and inconsistent counts are bounded", llmwire.ChatCompletions, `{"usage":{"prompt_tokens":-5,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":7},"completion_tokens_details":{"reasoning_tokens":9}}}`,
			llmwire.Usage{OutputTokens: 2, ReasoningTokens: 2}, true},
		{"no usage", llmwire.ChatCompletions, `{"model":"x"}`, llmwire.Usage{}, false},
		{"not JSON", llmwire.Messages, `{`, llmwire.Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := llmwire.ParseUsage(tt.api, []byte(tt.body))
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
