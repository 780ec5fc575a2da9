package mcpwire_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

func TestHeaderValueEncoding(t *testing.T) {
	for _, v := range []string{"gh__create_issue", "file:///tmp/a b.txt", " lead", "ünïcode", "line\nbreak"} {
		enc := mcpwire.EncodeHeaderValue(v)
		if strings.ContainsAny(enc, "\r\n") {
			t.Errorf("%q encodes to %q with a line break", v, enc)
		}
		dec, ok := mcpwire.DecodeHeaderValue(enc)
		if !ok || dec != v {
			t.Errorf("%q → %q → %q, %v", v, enc, dec, ok)
		}
	}
	if _, ok := mcpwire.DecodeHeaderValue("=?base64?***?="); ok {
		t.Error("malformed base64 accepted")
	}
}

func TestMirroredName(t *testing.T) {
	tests := []struct {
		name, method, params string
		want                 string
		ok                   bool
	}{
		{name: "tool", method: "tools/call", params: `{"name":"gh__create_issue","arguments":{}}`, want: "gh__create_issue", ok: true},
		{name: "prompt", method: "prompts/get", params: `{"name":"p"}`, want: "p", ok: true},
		{name: "resource", method: "resources/read", params: `{"uri":"file:///a"}`, want: "file:///a", ok: true},
		{name: "no mirrored name", method: "tools/list", params: `{}`},
		{name: "no params", method: "tools/call"},
		{name: "name not a string", method: "tools/call", params: `{"name":7}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := mcpwire.MirroredName(tc.method, json.RawMessage(tc.params))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("MirroredName = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
