package mcp

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzToolsCallParams: toolsCallParams.decode reads what json.Unmarshal
// reads into the tagged struct it stands for, and fails when it fails.
func FuzzToolsCallParams(f *testing.F) {
	for _, s := range []string{
		`{"name":"weather__forecast","arguments":{"city":"Oslo"}}`,
		`{"name":"t","arguments":null,"_meta":{"progressToken":7,"io.modelcontextprotocol/logLevel":"debug"}}`,
		`{"NAME":"a","name":"b","Arguments":[1],"_META":{"progresstoken":"x"},"_meta":{"io.modelcontextprotocol/LOGLEVEL":"info"}}`,
		`{"name":null}`, `{"name":5}`, `{"_meta":"x"}`, `{"_meta":null}`, `{"_meta":{"io.modelcontextprotocol/logLevel":3}}`,
		`{"argumentſ":{"a":1},"name":"\u00e9\ud800","progressToKen":1}`, `{"_meta":{"progreſſToKen":"k"}}`,
		`{"name":"a","name":"b"}`, `[]`, `"s"`, `{`, `{"x":1} {}`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, params []byte) {
		if string(bytes.TrimSpace(params)) == "null" {
			return // toolsCall decodes no null params
		}
		var want struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Meta      struct {
				ProgressToken json.RawMessage `json:"progressToken"`
				LogLevel      string          `json:"io.modelcontextprotocol/logLevel"`
			} `json:"_meta"`
		}
		werr := json.Unmarshal(params, &want)
		var got toolsCallParams
		gerr := got.decode(params)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: decode error %v, json.Unmarshal error %v", params, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if got.Name != want.Name || got.Meta.LogLevel != want.Meta.LogLevel ||
			!bytes.Equal(got.Arguments, want.Arguments) || (got.Arguments == nil) != (want.Arguments == nil) ||
			!bytes.Equal(got.Meta.ProgressToken, want.Meta.ProgressToken) || (got.Meta.ProgressToken == nil) != (want.Meta.ProgressToken == nil) {
			t.Fatalf("%q:\n decode       %q %q %q %q\n json.Unmarshal %q %q %q %q", params,
				got.Name, got.Arguments, got.Meta.ProgressToken, got.Meta.LogLevel,
				want.Name, want.Arguments, want.Meta.ProgressToken, want.Meta.LogLevel)
		}
	})
}
