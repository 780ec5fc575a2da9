package provider

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const created = 1767225600 // 2026-01-01

func (a answer) text() string { return strings.Join(a.words, "") }

// servedModel is the model as the provider names it in its answers: with
// a version suffix, as real providers do.
func servedModel(m string) string { return m + "-2026-01-01" }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// openAIUsage is usage in Chat Completions' or Responses' terms.
func openAIUsage(api string, u Usage) map[string]any {
	if api == "chat" {
		return map[string]any{
			"prompt_tokens": u.Input, "completion_tokens": u.Output, "total_tokens": u.Input + u.Output,
			"prompt_tokens_details":     map[string]any{"cached_tokens": u.Cached, "audio_tokens": 0},
			"completion_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
		}
	}
	return map[string]any{
		"input_tokens": u.Input, "output_tokens": u.Output, "total_tokens": u.Input + u.Output,
		"input_tokens_details":  map[string]any{"cached_tokens": u.Cached},
		"output_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning},
	}
}

// anthropicUsage is usage in Anthropic's terms: input without the cache's
// tokens.
func anthropicUsage(u Usage, output int64) map[string]any {
	return map[string]any{
		"input_tokens": u.Input - u.Cached - u.CacheWrite, "cache_creation_input_tokens": u.CacheWrite,
		"cache_read_input_tokens": u.Cached, "output_tokens": output,
	}
}

const toolArgs = `{"city":"Oslo"}`

// complete is a complete answer of api.
func complete(api, model string, a answer) []byte {
	switch api {
	case "chat":
		msg := map[string]any{"role": "assistant", "content": a.text(), "refusal": nil, "annotations": []any{}}
		finish := "stop"
		if a.tool {
			msg["content"] = nil
			msg["tool_calls"] = []any{map[string]any{"id": "call_1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": toolArgs}}}
			finish = "tool_calls"
		}
		return mustJSON(map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": servedModel(model),
			"choices":            []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
			"usage":              openAIUsage(api, a.usage),
			"system_fingerprint": "fp_fake", "service_tier": "default",
		})
	case "responses":
		return mustJSON(responseObject(model, a, "completed"))
	}
	content := []any{map[string]any{"type": "text", "text": a.text()}}
	stop := "end_turn"
	if a.tool {
		content = []any{map[string]any{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": map[string]any{"city": "Oslo"}}}
		stop = "tool_use"
	}
	return mustJSON(map[string]any{
		"id": "msg_fake", "type": "message", "role": "assistant", "model": servedModel(model), "content": content,
		"stop_reason": stop, "stop_sequence": nil, "usage": anthropicUsage(a.usage, a.usage.Output),
	})
}

// responseObject is a Responses API response object.
func responseObject(model string, a answer, status string) map[string]any {
	var output []any
	if a.tool {
		output = []any{map[string]any{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": toolArgs, "status": "completed"}}
	} else if status == "completed" {
		output = []any{map[string]any{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": a.text(), "annotations": []any{}, "logprobs": []any{}}}}}
	}
	r := map[string]any{
		"id": "resp_fake", "object": "response", "created_at": created, "status": status, "model": servedModel(model),
		"output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": []any{}, "text": map[string]any{"format": map[string]any{"type": "text"}},
		"error": nil, "incomplete_details": nil, "instructions": nil, "metadata": map[string]any{}, "temperature": 1.0, "top_p": 1.0,
		"usage": nil,
	}
	if status == "completed" {
		r["usage"] = openAIUsage("responses", a.usage)
	}
	if output == nil {
		r["output"] = []any{}
	}
	return r
}

// streamer writes events and flushes each.
type streamer struct {
	w     http.ResponseWriter
	delay time.Duration
	n     int
	seq   int
}

func (s *streamer) event(name string, data []byte) {
	s.eventAt(name, func() []byte { return data })
}

// eventAt writes an event whose data is made after the pause before it
// (a timestamped chunk).
func (s *streamer) eventAt(name string, dataAt func() []byte) {
	if s.n > 0 && s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.n++
	data := dataAt()
	var b strings.Builder
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	_, _ = s.w.Write([]byte(b.String()))
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// responsesEvent writes a Responses event with its sequence number.
func (s *streamer) responsesEvent(typ string, fields map[string]any) {
	fields["type"] = typ
	fields["sequence_number"] = s.seq
	s.seq++
	s.event(typ, mustJSON(fields))
}

// stream answers as an event stream of api. A broken answer stops after
// half its chunks and cuts the connection.
func (h *Handler) stream(w http.ResponseWriter, api string, req request, a answer) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Request-Id", "req_fake")
	w.WriteHeader(http.StatusOK)
	s := &streamer{w: w, delay: h.opts.ChunkDelay}
	cut := len(a.words)
	if a.broken || a.failing {
		cut = len(a.words) / 2
	}
	fail := func() {
		switch api {
		case "chat":
			s.event("", []byte(`{"error":{"message":"overloaded mid-stream","type":"server_error","param":null,"code":null}}`))
		case "responses":
			s.responsesEvent("error", map[string]any{"code": "server_error", "message": "overloaded mid-stream", "param": nil})
		default:
			s.event("error", []byte(`{"type":"error","error":{"type":"overloaded_error","message":"overloaded mid-stream"}}`))
		}
	}
	model := servedModel(req.Model)
	switch api {
	case "chat":
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		chunk := func(delta map[string]any, finish any) []byte {
			c := map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
				"system_fingerprint": "fp_fake", "choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
			if includeUsage {
				c["usage"] = nil
			}
			return mustJSON(c)
		}
		s.event("", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil))
		if a.tool {
			s.event("", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": "call_1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": ""}}}}, nil))
			s.event("", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": toolArgs}}}}, nil))
		}
		for _, word := range a.words[:cut] {
			s.eventAt("", func() []byte {
				if a.stamp {
					// When the chunk left the provider, for benchmarks.
					word = " @" + strconv.FormatInt(time.Now().UnixNano(), 10)
				}
				return chunk(map[string]any{"content": word}, nil)
			})
		}
		if a.broken {
			panic(http.ErrAbortHandler)
		}
		if a.failing {
			fail()
			return
		}
		finish := "stop"
		if a.tool {
			finish = "tool_calls"
		}
		s.event("", chunk(map[string]any{}, finish))
		if includeUsage {
			s.event("", mustJSON(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
				"system_fingerprint": "fp_fake", "choices": []any{}, "usage": openAIUsage(api, a.usage)}))
		}
		s.event("", []byte("[DONE]"))
	case "responses":
		s.responsesEvent("response.created", map[string]any{"response": responseObject(req.Model, a, "in_progress")})
		s.responsesEvent("response.in_progress", map[string]any{"response": responseObject(req.Model, a, "in_progress")})
		if a.tool {
			item := map[string]any{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "", "status": "in_progress"}
			s.responsesEvent("response.output_item.added", map[string]any{"output_index": 0, "item": item})
			s.responsesEvent("response.function_call_arguments.delta", map[string]any{"item_id": "fc_1", "output_index": 0, "delta": toolArgs})
			s.responsesEvent("response.function_call_arguments.done", map[string]any{"item_id": "fc_1", "output_index": 0, "arguments": toolArgs})
			item["arguments"], item["status"] = toolArgs, "completed"
			s.responsesEvent("response.output_item.done", map[string]any{"output_index": 0, "item": item})
		} else {
			item := map[string]any{"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []any{}}
			s.responsesEvent("response.output_item.added", map[string]any{"output_index": 0, "item": item})
			part := map[string]any{"type": "output_text", "text": "", "annotations": []any{}}
			s.responsesEvent("response.content_part.added", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": part})
			for _, word := range a.words[:cut] {
				s.responsesEvent("response.output_text.delta", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": word, "logprobs": []any{}})
			}
			if a.broken {
				panic(http.ErrAbortHandler)
			}
			if a.failing {
				fail()
				return
			}
			s.responsesEvent("response.output_text.done", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": a.text(), "logprobs": []any{}})
			part["text"] = a.text()
			s.responsesEvent("response.content_part.done", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": part})
			done := map[string]any{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": []any{part}}
			s.responsesEvent("response.output_item.done", map[string]any{"output_index": 0, "item": done})
		}
		s.responsesEvent("response.completed", map[string]any{"response": responseObject(req.Model, a, "completed")})
	default:
		s.event("message_start", mustJSON(map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": anthropicUsage(a.usage, 1)}}))
		if a.tool {
			s.event("content_block_start", mustJSON(map[string]any{"type": "content_block_start", "index": 0,
				"content_block": map[string]any{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": map[string]any{}}}))
			s.event("content_block_delta", mustJSON(map[string]any{"type": "content_block_delta", "index": 0,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": toolArgs}}))
		} else {
			s.event("content_block_start", mustJSON(map[string]any{"type": "content_block_start", "index": 0,
				"content_block": map[string]any{"type": "text", "text": ""}}))
			s.event("ping", []byte(`{"type": "ping"}`))
			for _, word := range a.words[:cut] {
				s.event("content_block_delta", mustJSON(map[string]any{"type": "content_block_delta", "index": 0,
					"delta": map[string]any{"type": "text_delta", "text": word}}))
			}
		}
		if a.broken {
			panic(http.ErrAbortHandler)
		}
		if a.failing {
			fail()
			return
		}
		s.event("content_block_stop", mustJSON(map[string]any{"type": "content_block_stop", "index": 0}))
		stop := "end_turn"
		if a.tool {
			stop = "tool_use"
		}
		// Two message_delta events, each with the cumulative output count:
		// a reader that adds them instead of taking the last over-counts.
		s.event("message_delta", mustJSON(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": nil, "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": a.usage.Output / 2}}))
		s.event("message_delta", mustJSON(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": a.usage.Output}}))
		s.event("message_stop", []byte(`{"type":"message_stop"}`))
	}
}
