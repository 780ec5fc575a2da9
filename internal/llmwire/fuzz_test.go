package llmwire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/llmwire"
)

var apis = []llmwire.API{llmwire.ChatCompletions, llmwire.Responses, llmwire.Messages}

// FuzzRequest: any body either parses or is refused with a RequestError;
// an edit of a parsed body is valid JSON that parses to the edited model.
func FuzzRequest(f *testing.F) {
	f.Add(uint8(0), []byte(`{"model":"a","stream":true,"stream_options":{"include_usage":false},"max_tokens":3,"n":2,"tools":[{"function":{"name":"x"}}]}`))
	f.Add(uint8(1), []byte(`{"model":"a","input":[{"content":[{"text":"hi"}]}],"tools":[{"type":"web_search"}]}`))
	f.Add(uint8(2), []byte(`{"model":"a","max_tokens":10,"system":"s","messages":[{"content":"`+string(bytes.Repeat([]byte("QUJD"), 70))+`"}]}`))
	f.Add(uint8(0), []byte(`{"model":"a","model":"b"}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		api := apis[int(which)%len(apis)]
		r, err := llmwire.ParseRequest(api, body)
		if err != nil {
			var re *llmwire.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a RequestError", err)
			}
			return
		}
		_ = r.Input()
		out, err := r.Edit(llmwire.Edit{Model: "edited", IncludeUsage: api == llmwire.ChatCompletions, LimitField: "max_tokens_x", LimitTokens: 7})
		if err != nil {
			return // stream_options of another type
		}
		if !json.Valid(out) {
			t.Fatalf("edit produced invalid JSON: %s", out)
		}
		again, err := llmwire.ParseRequest(api, out)
		if err != nil || again.Model != "edited" {
			t.Fatalf("edited body does not parse to the edited model: %v", err)
		}
	})
}

// FuzzStream: frames add up to the bytes read, whatever the stream, and
// following them never panics.
func FuzzStream(f *testing.F) {
	f.Add(uint8(0), []byte(chatStream))
	f.Add(uint8(1), []byte(responsesStream))
	f.Add(uint8(2), []byte(messagesStream))
	f.Add(uint8(2), []byte("event: message_delta\rdata: {\"usage\":{\"output_tokens\":-1}}\r\r"))
	f.Fuzz(func(t *testing.T, which uint8, stream []byte) {
		api := apis[int(which)%len(apis)]
		s := llmwire.NewStream(api)
		fr := llmwire.NewFrameReader(bytes.NewReader(stream), 4096)
		var raw []byte
		for {
			fm, err := fr.Next()
			if err != nil {
				if errors.Is(err, io.EOF) && !bytes.Equal(raw, stream) {
					t.Fatalf("frames %q do not add up to the stream %q", raw, stream)
				}
				break
			}
			raw = append(raw, fm.Raw...)
			s.Observe(fm)
		}
		u, _, _ := s.Usage()
		if u.InputTokens < 0 || u.OutputTokens < 0 || u.CachedInputTokens > u.InputTokens || u.ReasoningTokens > u.OutputTokens {
			t.Fatalf("usage out of bounds: %+v", u)
		}
		_, _ = llmwire.ParseUsage(api, stream)
	})
}
