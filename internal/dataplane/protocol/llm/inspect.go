package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/detector"
)

// content is the LLM APIs' view of a model call for runtime inspection
// (pipeline.Content), wherever the three APIs (Chat Completions,
// Responses, Messages) put text. The request is the prompt: the strings
// under "content", "text", "system", "instructions", "input" and
// "arguments" (messages and their parts, the system prompt, a tool call's
// arguments the caller replays). An answer — a complete one, or each
// event of a stream — shows the texts a model produced: "content",
// "text", "refusal", "arguments", "thinking", and in streams "delta" and
// "partial_json"; an Anthropic tool call's "input" object is a JSON
// document. Model names, ids, roles, tool definitions, usage, log
// probabilities and images (URLs, data: URIs, base64 sources) are not
// inspected.
type content struct {
	// body is the request as the caller sent it (Call.Payload).
	body []byte
}

var _ pipeline.Content = content{}

// InspectionContent is the LLM APIs' view, for runtime inspection, of a
// model call whose request body is body: what the endpoint sets as
// Call.Content.
func InspectionContent(body []byte) pipeline.Content { return content{body: body} }

// loc is where a part lies in a message.
type loc struct {
	where      string
	start, end int
	text       bool
}

// Parts implements pipeline.Content. For PayloadArguments it reads the
// request (msg, the empty Call.Arguments, is not used).
func (c content) Parts(p pipeline.Payload, msg []byte) ([]inspect.Part, error) {
	var locs []loc
	var err error
	if p == pipeline.PayloadArguments {
		msg = c.body
		locs, err = locateRequest(msg)
	} else {
		locs, err = locate(msg)
	}
	if err != nil {
		return nil, err
	}
	out := make([]inspect.Part, 0, len(locs))
	for _, l := range locs {
		raw := msg[l.start:l.end]
		if !l.text {
			out = append(out, inspect.Part{Where: l.where, JSON: raw})
			continue
		}
		s, err := detector.DecodeString(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.where, err)
		}
		out = append(out, inspect.Part{Where: l.where, Text: s})
	}
	return out, nil
}

// errRequestEdit refuses to rewrite a request: inspection only redacts
// answers.
var errRequestEdit = errors.New("a request is not rewritten")

// Rewrite implements pipeline.Content.
func (c content) Rewrite(p pipeline.Payload, msg []byte, edits []inspect.Edit) ([]byte, error) {
	if p == pipeline.PayloadArguments {
		return nil, errRequestEdit
	}
	locs, err := locate(msg)
	if err != nil {
		return nil, err
	}
	type splice struct {
		start, end int
		value      []byte
	}
	ss := make([]splice, 0, len(edits))
	for _, e := range edits {
		if e.Part < 0 || e.Part >= len(locs) {
			return nil, fmt.Errorf("no part %d", e.Part)
		}
		l := locs[e.Part]
		v := []byte(e.JSON)
		if l.text {
			// encoding/json escapes line breaks: an event's data line stays
			// one line.
			if v, err = json.Marshal(e.Text); err != nil {
				return nil, err
			}
		}
		ss = append(ss, splice{l.start, l.end, v})
	}
	slices.SortFunc(ss, func(a, b splice) int { return b.start - a.start })
	out := slices.Clone(msg)
	for _, s := range ss {
		out = slices.Concat(out[:s.start], s.value, out[s.end:])
	}
	return out, nil
}

// locateRequest finds the parts of a request body.
func locateRequest(body []byte) ([]loc, error) {
	lead := len(body) - len(bytes.TrimLeft(body, " \t\r\n"))
	if lead == len(body) {
		return nil, nil
	}
	return walk(body[lead:], lead, "request", 0, requestTexts, nil)
}

// locate finds the parts of an answer: a JSON document (a complete
// answer), or server-sent events (one event streamed before the end, or
// the events a stream ends with), whose data lines are JSON.
func locate(msg []byte) ([]loc, error) {
	lead := len(msg) - len(bytes.TrimLeft(msg, " \t\r\n"))
	if lead == len(msg) {
		return nil, nil
	}
	if c := msg[lead]; c == '{' || c == '[' {
		return walk(msg[lead:], lead, "result", 0, answerTexts, nil)
	}
	var out []loc
	events := 0
	for i := 0; i < len(msg); {
		end := bytes.IndexByte(msg[i:], '\n')
		if end < 0 {
			end = len(msg)
		} else {
			end += i
		}
		line := bytes.TrimSuffix(msg[i:end], []byte("\r"))
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			start := i + len("data:")
			if len(data) > 0 && data[0] == ' ' {
				data, start = data[1:], start+1
			}
			if len(data) > 0 && (data[0] == '{' || data[0] == '[') && !bytes.Equal(data, []byte("[DONE]")) {
				var err error
				if out, err = walk(data, start, "event "+strconv.Itoa(events)+" data", 0, answerTexts, out); err != nil {
					return nil, err
				}
			}
			events++
		}
		i = end + 1
	}
	return out, nil
}

// answerTexts are the members whose string value is text a model
// produced; requestTexts those whose string value is the prompt.
var (
	answerTexts = map[string]bool{
		"content": true, "text": true, "refusal": true, "arguments": true, "thinking": true,
		"delta": true, "partial_json": true,
	}
	requestTexts = map[string]bool{
		"content": true, "text": true, "system": true, "instructions": true, "input": true, "arguments": true,
	}
)

// skipped are the members that hold nothing a model reads or wrote for
// the caller to read, or only copies of it.
var skipped = map[string]bool{"usage": true, "logprobs": true, "metadata": true, "tools": true}

// maxNesting bounds how deep walk looks: the deepest text of the three
// APIs (a Responses stream's completed event's output content) is six
// levels down.
const maxNesting = 10

// walk adds the text parts inside the JSON value b (at base in the
// message, named where) to out: the strings of members named in texts.
func walk(b []byte, base int, where string, depth int, texts map[string]bool, out []loc) ([]loc, error) {
	if depth > maxNesting || len(b) == 0 {
		return out, nil
	}
	switch b[0] {
	case '[':
		items, err := detector.Items(b)
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			if out, err = walk(b[it.Start:it.End], base+it.Start, where+"["+strconv.Itoa(i)+"]", depth+1, texts, out); err != nil {
				return nil, err
			}
		}
	case '{':
		ms, err := detector.Members(b)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			v := b[m.Start:m.End]
			name := where + "." + m.Key
			switch {
			case skipped[m.Key] || len(v) == 0:
			case v[0] == '"':
				if texts[m.Key] {
					out = append(out, loc{where: name, start: base + m.Start, end: base + m.End, text: true})
				}
			case m.Key == "input" && v[0] == '{' && texts["partial_json"]:
				// An Anthropic tool call's arguments, in an answer.
				out = append(out, loc{where: name, start: base + m.Start, end: base + m.End})
			case v[0] == '{' || v[0] == '[':
				if out, err = walk(v, base+m.Start, name, depth+1, texts, out); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}
