package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/detector"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// content is MCP's view of a call's messages for runtime inspection
// (pipeline.Content): what in a tools/call result, a resource read, a
// prompt, or a notification is text a model reads. Binary content (images,
// audio, blobs) and _meta are not inspected.
type content struct {
	// method is the call's JSON-RPC method ("tools/call").
	method string
}

var _ pipeline.Content = content{}

// InspectionContent is MCP's view, for runtime inspection, of the
// messages of a call of method ("tools/call"): what the endpoint sets as
// Call.Content (benchmarks and tests use it too).
func InspectionContent(method string) pipeline.Content { return content{method: method} }

// loc is where a part lies in a message: its span, and whether it is a
// JSON string read as text.
type loc struct {
	where      string
	start, end int
	text       bool
}

// Parts implements pipeline.Content.
func (c content) Parts(p pipeline.Payload, msg []byte) ([]inspect.Part, error) {
	locs, err := c.locate(p, msg)
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

// Rewrite implements pipeline.Content.
func (c content) Rewrite(p pipeline.Payload, msg []byte, edits []inspect.Edit) ([]byte, error) {
	locs, err := c.locate(p, msg)
	if err != nil {
		return nil, err
	}
	type splice struct {
		start, end int
		value      []byte
	}
	var ss []splice
	for _, e := range edits {
		if e.Part < 0 || e.Part >= len(locs) {
			return nil, fmt.Errorf("no part %d", e.Part)
		}
		l := locs[e.Part]
		v := []byte(e.JSON)
		if l.text {
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

// locate finds the parts of msg.
func (c content) locate(p pipeline.Payload, msg []byte) ([]loc, error) {
	if len(msg) == 0 {
		return nil, nil
	}
	switch p {
	case pipeline.PayloadArguments:
		return []loc{{where: "arguments", start: 0, end: len(msg)}}, nil
	case pipeline.PayloadResult:
		return resultParts(c.method, msg)
	case pipeline.PayloadFrame:
		return frameParts(msg)
	}
	return nil, fmt.Errorf("unknown payload %d", p)
}

// member finds member key of object b (at offset base in the message) and
// returns its span.
func member(b []byte, base int, key string) (start, end int, ok bool, err error) {
	ms, err := detector.Members(b)
	if err != nil {
		return 0, 0, false, err
	}
	for _, m := range ms {
		if m.Key == key {
			return base + m.Start, base + m.End, true, nil
		}
	}
	return 0, 0, false, nil
}

// isString reports whether a JSON value starts as a string.
func isStringValue(b []byte) bool { return len(b) > 0 && b[0] == '"' }

// textOf adds the "text" member of object item (at base) when it is a
// string.
func textOf(msg []byte, base, end int, where string, out []loc) ([]loc, error) {
	item := msg[base:end]
	if !mcpwire.IsObject(item) {
		return out, nil
	}
	s, e, ok, err := member(item, base, "text")
	if err != nil || !ok || !isStringValue(msg[s:e]) {
		return out, err
	}
	return append(out, loc{where: where + ".text", start: s, end: e, text: true}), nil
}

// resultParts: a tool result's text content and structured content, a
// resource's text contents, a prompt's description and message texts; any
// other result as one JSON document.
func resultParts(method string, msg []byte) ([]loc, error) {
	var out []loc
	var err error
	items := func(key string, each func(i int, s, e int) error) error {
		s, e, ok, err := member(msg, 0, key)
		if err != nil || !ok {
			return err
		}
		if v := bytes.TrimLeft(msg[s:e], " \t\r\n"); len(v) == 0 || v[0] != '[' {
			return nil // not an array: nothing of this shape to read
		}
		spans, err := detector.Items(msg[s:e])
		if err != nil {
			return err
		}
		for i, sp := range spans {
			if err := each(i, s+sp.Start, s+sp.End); err != nil {
				return err
			}
		}
		return nil
	}
	switch method {
	case "tools/call":
		err = items("content", func(i, s, e int) error {
			where := "content[" + strconv.Itoa(i) + "]"
			out, err = textOf(msg, s, e, where, out)
			if err != nil {
				return err
			}
			if !mcpwire.IsObject(msg[s:e]) {
				return nil
			}
			rs, re, ok, err := member(msg[s:e], s, "resource")
			if err != nil || !ok {
				return err
			}
			out, err = textOf(msg, rs, re, where+".resource", out)
			return err
		})
		if err != nil {
			return nil, err
		}
		if s, e, ok, err := member(msg, 0, "structuredContent"); err != nil {
			return nil, err
		} else if ok {
			out = append(out, loc{where: "structuredContent", start: s, end: e})
		}
	case "resources/read":
		err = items("contents", func(i, s, e int) error {
			out, err = textOf(msg, s, e, "contents["+strconv.Itoa(i)+"]", out)
			return err
		})
	case "prompts/get":
		if s, e, ok, err := member(msg, 0, "description"); err != nil {
			return nil, err
		} else if ok && isStringValue(msg[s:e]) {
			out = append(out, loc{where: "description", start: s, end: e, text: true})
		}
		err = items("messages", func(i, s, e int) error {
			if !mcpwire.IsObject(msg[s:e]) {
				return nil
			}
			cs, ce, ok, err := member(msg[s:e], s, "content")
			if err != nil || !ok {
				return err
			}
			out, err = textOf(msg, cs, ce, "messages["+strconv.Itoa(i)+"].content", out)
			return err
		})
	default:
		out = []loc{{where: "result", start: 0, end: len(msg)}}
	}
	return out, err
}

// frameParts: a progress notification's message, a log message's data,
// and the params of anything else relayed (server requests such as
// sampling and elicitation).
func frameParts(msg []byte) ([]loc, error) {
	m, err := mcpwire.Parse(msg)
	if err != nil {
		return nil, err
	}
	ps, pe, ok, err := member(msg, 0, "params")
	if err != nil || !ok {
		return nil, err
	}
	switch m.Method {
	case "notifications/progress":
		s, e, ok, err := member(msg[ps:pe], ps, "message")
		if err != nil || !ok || !isStringValue(msg[s:e]) {
			return nil, err
		}
		return []loc{{where: "params.message", start: s, end: e, text: true}}, nil
	case "notifications/message":
		s, e, ok, err := member(msg[ps:pe], ps, "data")
		if err != nil || !ok {
			return nil, err
		}
		return []loc{{where: "params.data", start: s, end: e, text: isStringValue(msg[s:e])}}, nil
	}
	return []loc{{where: "params", start: ps, end: pe}}, nil
}
