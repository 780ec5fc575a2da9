package a2a

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

// content is A2A's view of a call's messages for runtime inspection
// (pipeline.Content): the parts of the messages and artifacts a model
// reads. A text part's text is a text; a data part's data is a JSON
// document. File parts (bytes or a URI), ids, roles, names and metadata
// are not inspected.
//
// The same shapes serve both brokered versions: 1.0 wraps a result in a
// member naming its kind ({"task": …}, {"statusUpdate": …}), 0.3 marks it
// with "kind"; both keep a message's parts in "parts", a part's text in
// "text" and its structured value in "data".
type content struct {
	// params are the caller's params: what a SendMessage carries (A2A
	// calls have no tool arguments; the message is the request).
	params json.RawMessage
}

var _ pipeline.Content = content{}

// InspectionContent is A2A's view, for runtime inspection, of the
// messages of a call whose params are params: what the endpoint sets as
// Call.Content (tests and benchmarks use it too).
func InspectionContent(params json.RawMessage) pipeline.Content { return content{params: params} }

// loc is where a part lies in a message.
type loc struct {
	where      string
	start, end int
	text       bool
}

// Parts implements pipeline.Content. For PayloadArguments it reads the
// params the content was made with (msg, the empty Call.Arguments, is
// not used).
func (c content) Parts(p pipeline.Payload, msg []byte) ([]inspect.Part, error) {
	if p == pipeline.PayloadArguments {
		msg = c.params
	}
	locs, err := locate(p, msg)
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
	locs, err := locate(p, msg)
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

// locate finds the parts of msg: the request's params, a result (a
// message, a task, a stream event, a list of tasks), or an event relayed
// before the result (a JSON-RPC response whose result is one of those).
func locate(p pipeline.Payload, msg []byte) ([]loc, error) {
	lead := len(msg) - len(bytes.TrimLeft(msg, " \t\r\n"))
	if lead == len(msg) {
		return nil, nil
	}
	switch p {
	case pipeline.PayloadArguments:
		return walk(msg[lead:], lead, "params", 0, nil)
	case pipeline.PayloadResult:
		return walk(msg[lead:], lead, "result", 0, nil)
	case pipeline.PayloadFrame:
		ms, err := detector.Members(msg)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.Key == "result" {
				return walk(msg[m.Start:m.End], m.Start, "result", 0, nil)
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("unknown payload %d", p)
}

// containers are the members whose value holds messages or parts: one
// object, or (lists) an array of them.
var containers = map[string]bool{
	"message": true, "task": true, "statusUpdate": true, "artifactUpdate": true,
	"status": true, "artifact": true,
}

var lists = map[string]bool{"history": true, "artifacts": true, "tasks": true}

// maxNesting bounds how far walk follows containers: a list of tasks
// (tasks[i].history[j].parts) is the deepest shape A2A has.
const maxNesting = 6

// walk adds the parts inside the object b (at base in the message, named
// where) to out: the items of its "parts", and those of the containers
// it holds. A value that is not an object is nothing to inspect.
func walk(b []byte, base int, where string, depth int, out []loc) ([]loc, error) {
	if depth > maxNesting || !isObject(b) {
		return out, nil
	}
	ms, err := detector.Members(b)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		v := b[m.Start:m.End]
		name := where + "." + m.Key
		switch {
		case m.Key == "parts":
			if out, err = parts(v, base+m.Start, name, out); err != nil {
				return nil, err
			}
		case containers[m.Key]:
			if out, err = walk(v, base+m.Start, name, depth+1, out); err != nil {
				return nil, err
			}
		case lists[m.Key] && isArray(v):
			items, err := detector.Items(v)
			if err != nil {
				return nil, err
			}
			for i, it := range items {
				if out, err = walk(v[it.Start:it.End], base+m.Start+it.Start, name+"["+strconv.Itoa(i)+"]", depth+1, out); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// parts adds the text and data of each part in the array b.
func parts(b []byte, base int, where string, out []loc) ([]loc, error) {
	if !isArray(b) {
		return out, nil
	}
	items, err := detector.Items(b)
	if err != nil {
		return nil, err
	}
	for i, it := range items {
		item := b[it.Start:it.End]
		if !isObject(item) {
			continue
		}
		ms, err := detector.Members(item)
		if err != nil {
			return nil, err
		}
		name := where + "[" + strconv.Itoa(i) + "]"
		for _, m := range ms {
			v := item[m.Start:m.End]
			start, end := base+it.Start+m.Start, base+it.Start+m.End
			switch {
			case m.Key == "text" && len(v) > 0 && v[0] == '"':
				out = append(out, loc{where: name + ".text", start: start, end: end, text: true})
			case m.Key == "data" && (isObject(v) || isArray(v)):
				out = append(out, loc{where: name + ".data", start: start, end: end})
			}
		}
	}
	return out, nil
}

func isObject(b []byte) bool { return len(b) > 0 && b[0] == '{' }
func isArray(b []byte) bool  { return len(b) > 0 && b[0] == '[' }
