package mcp

import (
	"encoding/json"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// toolJSON is a tool as tools/list presents it.
type toolJSON struct {
	Name         string          `json:"name"`
	Title        json.RawMessage `json:"title,omitempty"`
	Description  json.RawMessage `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
}

var emptyObjectSchema = json.RawMessage(`{"type":"object"}`)

// presentTool shows a pinned tool under its action name with the approved
// definition's title, description and schemas. Its readOnlyHint is the
// operator's classification, which the gateway enforces, never the
// upstream's own hint; the other annotations are the approved ones.
func presentTool(t pipeline.Tool) (toolJSON, error) {
	def := map[string]json.RawMessage{}
	if len(t.Definition) > 0 {
		if err := json.Unmarshal(t.Definition, &def); err != nil {
			return toolJSON{}, fmt.Errorf("decode definition of %s: %w", t.Action, err)
		}
	}
	out := toolJSON{Name: t.Action, InputSchema: emptyObjectSchema}
	if v := def["title"]; isString(v) {
		out.Title = v
	}
	if v := def["description"]; isString(v) {
		out.Description = v
	}
	if v := def["inputSchema"]; isObject(v) {
		out.InputSchema = v
	}
	if v := def["outputSchema"]; isObject(v) {
		out.OutputSchema = v
	}
	ann := map[string]json.RawMessage{}
	if v := def["annotations"]; isObject(v) {
		if err := json.Unmarshal(v, &ann); err != nil {
			return toolJSON{}, fmt.Errorf("decode annotations of %s: %w", t.Action, err)
		}
	}
	ann["readOnlyHint"] = json.RawMessage(fmt.Sprint(t.ReadOnly()))
	b, err := json.Marshal(ann)
	if err != nil {
		return toolJSON{}, fmt.Errorf("encode annotations of %s: %w", t.Action, err)
	}
	out.Annotations = b
	return out, nil
}

func isString(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }
