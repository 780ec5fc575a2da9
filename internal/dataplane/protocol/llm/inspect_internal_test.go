package llm

import (
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/llmwire"
)

func partStrings(t *testing.T, c content, p pipeline.Payload, msg string) []string {
	t.Helper()
	parts, err := c.Parts(p, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, part := range parts {
		if part.JSON != nil {
			got = append(got, part.Where+":"+string(part.JSON))
		} else {
			got = append(got, part.Where+"="+part.Text)
		}
	}
	return got
}

func TestContentPrompt(t *testing.T) {
	tests := []struct {
		name string
		api  llmwire.API
		body string
		want []string
	}{
		{"chat completions: messages and parts, not the model, roles or images", llmwire.ChatCompletions,
			`{"model":"openai/gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"mail jane@example.com"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"tools":[{"type":"function","function":{"name":"f","description":"d"}}]}`,
			[]string{"request.messages[0].content=be brief", "request.messages[1].content[0].text=mail jane@example.com"}},
		{"responses: instructions and input", llmwire.Responses,
			`{"model":"m","instructions":"be kind","input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]}`,
			[]string{"request.instructions=be kind", "request.input[0].content[0].text=hi"}},
		{"responses: a string input", llmwire.Responses, `{"model":"m","input":"hello"}`, []string{"request.input=hello"}},
		{"messages: system and blocks, not a base64 image", llmwire.Messages,
			`{"model":"m","max_tokens":5,"system":"sys","messages":[{"role":"user","content":[{"type":"text","text":"q"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}`,
			[]string{"request.system=sys", "request.messages[0].content[0].text=q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := llmwire.ParseRequest(tt.api, []byte(tt.body)); err != nil {
				t.Fatalf("the fixture is not a valid request: %v", err)
			}
			c := content{body: []byte(tt.body)}
			if got := partStrings(t, c, pipeline.PayloadArguments, ""); !slices.Equal(got, tt.want) {
				t.Errorf("parts = %q, want %q", got, tt.want)
			}
			if _, err := c.Rewrite(pipeline.PayloadArguments, nil, []inspect.Edit{{Part: 0, Text: "x"}}); err == nil {
				t.Error("a request was rewritten")
			}
		})
	}
}

func TestContentAnswers(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want []string // "where=text" or "where:json"
	}{
		{"chat completion",
			`{"id":"chatcmpl-AbCdEfGh1234567890AbCdEfGh12345","choices":[{"index":0,"message":{"role":"assistant","content":"hello","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"q\":1}"}}]},"logprobs":{"content":[{"token":"hello"}]}}],"usage":{"prompt_tokens":3}}`,
			[]string{"result.choices[0].message.content=hello", `result.choices[0].message.tool_calls[0].function.arguments={"q":1}`}},
		{"anthropic message",
			`{"id":"msg_01","type":"message","role":"assistant","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"f","input":{"q":"x"}}],"usage":{"input_tokens":1}}`,
			[]string{"result.content[0].text=hi", `result.content[1].input:{"q":"x"}`}},
		{"responses",
			`{"id":"resp_1","output":[{"type":"message","content":[{"type":"output_text","text":"done","annotations":[]}]},{"type":"function_call","arguments":"{}"}]}`,
			[]string{"result.output[0].content[0].text=done", "result.output[1].arguments={}"}},
		{"chat stream chunk", "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
			[]string{"event 0 data.choices[0].delta.content=Hel"}},
		{"anthropic stream event", "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\r\n\r\n",
			[]string{"event 0 data.delta.text=lo"}},
		{"anthropic tool input stream", "event: content_block_delta\ndata: {\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\"}}\n\n",
			[]string{`event 0 data.delta.partial_json={"q`}},
		{"responses delta", "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"abc\"}\n\n",
			[]string{"event 0 data.delta=abc"}},
		{"the events a stream ends with", "data: {\"choices\":[{\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
			[]string{"event 0 data.choices[0].delta.content=!"}},
		{"a keep-alive", ": ping\n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []pipeline.Payload{pipeline.PayloadResult, pipeline.PayloadFrame} {
				if got := partStrings(t, content{}, p, tt.msg); !slices.Equal(got, tt.want) {
					t.Errorf("payload %d: parts = %q, want %q", p, got, tt.want)
				}
			}
		})
	}
	for _, bad := range []string{`{"content":"a","content":"b"}`, `{"choices":[`, "data: {\"delta\":\n\n"} {
		if _, err := (content{}).Parts(pipeline.PayloadResult, []byte(bad)); err == nil {
			t.Errorf("Parts(%q) = nil error", bad)
		}
	}
}

func TestContentRewrite(t *testing.T) {
	msg := []byte("event: content_block_delta\ndata: {\"delta\":{\"type\":\"text_delta\",\"text\":\"mail jane@example.com\"}}\n\n")
	out, err := content{}.Rewrite(pipeline.PayloadFrame, msg, []inspect.Edit{{Part: 0, Text: "mail [REDACTED:pii.email]\nnext"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "event: content_block_delta\ndata: {\"delta\":{\"type\":\"text_delta\",\"text\":\"mail [REDACTED:pii.email]\\nnext\"}}\n\n"
	if string(out) != want {
		t.Errorf("rewritten\n got  %q\n want %q", out, want)
	}
	if _, err := (content{}).Rewrite(pipeline.PayloadFrame, msg, []inspect.Edit{{Part: 3, Text: "x"}}); err == nil {
		t.Error("an edit of a part that does not exist was accepted")
	}
}

func FuzzContentParts(f *testing.F) {
	f.Add(`{"choices":[{"message":{"content":"a"}}]}`)
	f.Add("event: x\ndata: {\"delta\":{\"text\":\"b\"}}\n\ndata: [DONE]\n\n")
	f.Add(`{"content":[{"type":"tool_use","input":{"a":"b"}}]}`)
	f.Fuzz(func(t *testing.T, msg string) {
		c := content{}
		parts, err := c.Parts(pipeline.PayloadFrame, []byte(msg))
		if err != nil {
			return
		}
		edits := make([]inspect.Edit, len(parts))
		for i, part := range parts {
			edits[i] = inspect.Edit{Part: i, Text: "x \"quoted\"\n", JSON: part.JSON}
		}
		out, err := c.Rewrite(pipeline.PayloadFrame, []byte(msg), edits)
		if err != nil {
			t.Fatalf("Rewrite of what Parts read: %v", err)
		}
		again, err := c.Parts(pipeline.PayloadFrame, out)
		if err != nil {
			t.Fatalf("Parts of the rewritten %q: %v", out, err)
		}
		if len(again) != len(parts) {
			t.Fatalf("rewritten %q has %d parts, had %d", out, len(again), len(parts))
		}
	})
}
