package pipeline_test

import (
	"encoding/json"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// TestDecodedArguments: what one stage decoded is handed to the next only
// for the very arguments it decoded.
func TestDecodedArguments(t *testing.T) {
	c := &pipeline.Call{Arguments: json.RawMessage(`{"a":1}`)}
	if _, ok := c.DecodedArguments(); ok {
		t.Fatal("DecodedArguments before any decode: ok")
	}
	v := map[string]any{"a": json.Number("1")}
	c.SetDecodedArguments(v)
	if got, ok := c.DecodedArguments(); !ok || got.(map[string]any)["a"] != json.Number("1") {
		t.Fatalf("DecodedArguments = %v, %v; want the recorded value", got, ok)
	}
	c.Arguments = json.RawMessage(`{"a":2}`)
	if _, ok := c.DecodedArguments(); ok {
		t.Fatal("DecodedArguments after Arguments changed: ok")
	}
	c.Arguments = nil
	c.SetDecodedArguments(map[string]any{})
	if _, ok := c.DecodedArguments(); ok {
		t.Fatal("DecodedArguments recorded for absent arguments: ok")
	}
}
