package llmwire

import (
	"bytes"
	"encoding/json"
	"strings"
)

// MaxStreamText bounds the text a Stream keeps for the gateway's own
// token count.
const MaxStreamText = 8 << 20

// FrameKind is what a frame means to the gateway.
type FrameKind int

// Kinds of frame.
const (
	// FrameContent is anything the caller gets as it comes: content,
	// keep-alives, events the gateway does not read.
	FrameContent FrameKind = iota + 1
	// FrameUsage is Chat Completions' usage chunk (no choices, only
	// usage), sent when stream_options.include_usage is set.
	FrameUsage
	// FrameEnd ends the stream: Chat Completions' [DONE], Responses'
	// response.completed, .incomplete or .failed, Messages' message_stop.
	FrameEnd
	// FrameError is the provider's error event; the stream ends after it.
	FrameError
)

// Stream follows one API's event stream for the gateway: the provider's
// usage counts (Messages' message_delta usage is cumulative and replaces
// what came before), whether the stream ended as the API ends it, and the
// text produced so far (for the gateway's own count should the provider's
// never arrive). Not safe for concurrent use.
type Stream struct {
	api API
	// usage is the provider's count: for Chat Completions and Responses
	// complete once it arrived; for Messages built from message_start
	// and message_delta.
	usage     Usage
	haveUsage bool
	anth      anthropicCounts
	// sawDelta: Messages' message_delta, which carries the final output
	// count, arrived.
	sawDelta bool
	ended    bool
	failed   bool
	text     bytes.Buffer
}

// NewStream follows a stream of api.
func NewStream(api API) *Stream { return &Stream{api: api} }

// Observe reads one frame and says what it is.
func (s *Stream) Observe(f *Frame) FrameKind {
	if f.Data == nil {
		return FrameContent
	}
	switch s.api {
	case ChatCompletions:
		return s.chat(f)
	case Responses:
		return s.responses(f)
	case Messages:
		return s.messages(f)
	}
	return FrameContent
}

// Usage is the provider's count so far. inputKnown and outputKnown say
// which halves the provider reported (both once a stream ended normally).
func (s *Stream) Usage() (u Usage, inputKnown, outputKnown bool) {
	if s.api == Messages {
		u = s.anth.usage()
		u.Model = s.usage.Model
		return u, s.anth.haveInput, s.sawDelta && s.anth.haveOutput
	}
	return s.usage, s.haveUsage, s.haveUsage
}

// Ended reports whether the stream ended as its API ends a stream.
func (s *Stream) Ended() bool { return s.ended }

// Failed reports whether the provider sent an error event.
func (s *Stream) Failed() bool { return s.failed }

// Text is the text produced so far: content, reasoning and tool-call
// arguments, in the order they came (at most MaxStreamText bytes).
func (s *Stream) Text() string { return s.text.String() }

func (s *Stream) addText(t string) {
	if room := MaxStreamText - s.text.Len(); room > 0 {
		if len(t) > room {
			t = t[:room]
		}
		s.text.WriteString(t)
	}
}

func (s *Stream) chat(f *Frame) FrameKind {
	if string(bytes.TrimSpace(f.Data)) == "[DONE]" {
		s.ended = true
		return FrameEnd
	}
	var c struct {
		Model   string          `json:"model"`
		Error   json.RawMessage `json:"error"`
		Choices []struct {
			Delta struct {
				Content          *string `json:"content"`
				ReasoningContent *string `json:"reasoning_content"`
				Refusal          *string `json:"refusal"`
				ToolCalls        []struct {
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"delta"`
		} `json:"choices"`
		Usage *openAIUsage `json:"usage"`
	}
	if json.Unmarshal(f.Data, &c) != nil {
		return FrameContent
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		s.failed = true
		return FrameError
	}
	if c.Model != "" {
		s.usage.Model = truncate(c.Model, MaxModelName)
	}
	for _, ch := range c.Choices {
		d := ch.Delta
		for _, t := range []*string{d.Content, d.ReasoningContent, d.Refusal} {
			if t != nil {
				s.addText(*t)
			}
		}
		for _, tc := range d.ToolCalls {
			s.addText(tc.Function.Name)
			s.addText(tc.Function.Arguments)
		}
	}
	if c.Usage != nil {
		if u, ok := c.Usage.usage(); ok {
			u.Model = s.usage.Model
			s.usage, s.haveUsage = u, true
			if len(c.Choices) == 0 {
				return FrameUsage
			}
		}
	}
	return FrameContent
}

func (s *Stream) responses(f *Frame) FrameKind {
	var e struct {
		Type     string          `json:"type"`
		Delta    json.RawMessage `json:"delta"`
		Response *struct {
			Model string       `json:"model"`
			Usage *openAIUsage `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(f.Data, &e) != nil {
		return FrameContent
	}
	if e.Response != nil && e.Response.Model != "" {
		s.usage.Model = truncate(e.Response.Model, MaxModelName)
	}
	switch {
	case e.Type == "error":
		s.failed = true
		return FrameError
	case e.Type == "response.completed" || e.Type == "response.incomplete" || e.Type == "response.failed":
		if e.Response != nil && e.Response.Usage != nil {
			if u, ok := e.Response.Usage.usage(); ok {
				u.Model = s.usage.Model
				s.usage, s.haveUsage = u, true
			}
		}
		s.ended = true
		return FrameEnd
	case strings.HasSuffix(e.Type, ".delta") && len(e.Delta) > 0 && e.Delta[0] == '"':
		var t string
		if json.Unmarshal(e.Delta, &t) == nil {
			s.addText(t)
		}
	}
	return FrameContent
}

func (s *Stream) messages(f *Frame) FrameKind {
	var e struct {
		Type    string `json:"type"`
		Message *struct {
			Model string          `json:"model"`
			Usage *anthropicUsage `json:"usage"`
		} `json:"message"`
		Delta *struct {
			Text        *string `json:"text"`
			PartialJSON *string `json:"partial_json"`
			Thinking    *string `json:"thinking"`
		} `json:"delta"`
		Usage *anthropicUsage `json:"usage"`
	}
	if json.Unmarshal(f.Data, &e) != nil {
		return FrameContent
	}
	kind := e.Type
	if kind == "" {
		kind = f.Event
	}
	switch kind {
	case "message_start":
		if e.Message != nil {
			s.usage.Model = truncate(e.Message.Model, MaxModelName)
			s.anth.merge(e.Message.Usage)
		}
	case "content_block_delta":
		if d := e.Delta; d != nil {
			for _, t := range []*string{d.Text, d.PartialJSON, d.Thinking} {
				if t != nil {
					s.addText(*t)
				}
			}
		}
	case "message_delta":
		// Cumulative: the counts replace what came before.
		s.anth.merge(e.Usage)
		s.sawDelta = s.sawDelta || e.Usage != nil
	case "message_stop":
		s.ended = true
		return FrameEnd
	case "error":
		s.failed = true
		return FrameError
	}
	return FrameContent
}
