package mcpwire_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func TestTraceContext(t *testing.T) {
	long := strings.Repeat("a", 9<<10)
	for _, tt := range []struct {
		name, params, parent, state string
	}{
		{name: "both keys", params: `{"name":"t","_meta":{"traceparent":"` + tp + `","tracestate":"k=v"}}`, parent: tp, state: "k=v"},
		{name: "traceparent alone", params: `{"_meta":{"progressToken":1,"traceparent":"` + tp + `"}}`, parent: tp},
		{name: "no _meta", params: `{"name":"t","arguments":{"traceparent":"` + tp + `"}}`},
		{name: "not a string", params: `{"_meta":{"traceparent":42,"tracestate":["k=v"]}}`},
		{name: "_meta not an object", params: `{"_meta":"traceparent"}`},
		{name: "a key too long", params: `{"_meta":{"traceparent":"` + long + `","tracestate":"k=v"}}`, state: "k=v"},
		{name: "params not an object", params: `["_meta"]`},
		{name: "no params", params: ``},
		{name: "malformed JSON", params: `{"_meta":{"traceparent":"` + tp},
		{name: "escaped value kept as sent", params: `{"_meta":{"traceparent":"00-\u0061"}}`, parent: "00-a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent, state := mcpwire.TraceContext(json.RawMessage(tt.params))
			if parent != tt.parent || state != tt.state {
				t.Errorf("TraceContext = %q, %q; want %q, %q", parent, state, tt.parent, tt.state)
			}
		})
	}
}

func TestWithTraceContext(t *testing.T) {
	for _, tt := range []struct {
		name, params, parent, state string
		want                        string // the params after, as JSON (compared decoded)
		wantErr                     bool
	}{
		{name: "adds _meta, keeps the rest", params: `{"name":"t","arguments":{"a":1}}`, parent: tp, state: "k=v",
			want: `{"name":"t","arguments":{"a":1},"_meta":{"traceparent":"` + tp + `","tracestate":"k=v"}}`},
		{name: "replaces the caller's, keeps other _meta keys", params: `{"_meta":{"progressToken":7,"traceparent":"00-x","tracestate":"old=1"}}`, parent: tp,
			want: `{"_meta":{"progressToken":7,"traceparent":"` + tp + `"}}`},
		{name: "no params", params: ``, parent: tp, want: `{"_meta":{"traceparent":"` + tp + `"}}`},
		{name: "null params", params: `null`, parent: tp, want: `{"_meta":{"traceparent":"` + tp + `"}}`},
		{name: "null _meta", params: `{"_meta":null}`, parent: tp, want: `{"_meta":{"traceparent":"` + tp + `"}}`},
		{name: "params an array", params: `[1]`, parent: tp, wantErr: true},
		{name: "_meta not an object", params: `{"_meta":[1]}`, parent: tp, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mcpwire.WithTraceContext(json.RawMessage(tt.params), tt.parent, tt.state)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("result %s is not JSON: %v", got, err)
			}
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if string(gb) != string(wb) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if p, s := mcpwire.TraceContext(got); p != tt.parent || s != tt.state {
				t.Errorf("read back %q, %q; want %q, %q", p, s, tt.parent, tt.state)
			}
		})
	}
}

// FuzzTraceContext: any params (a caller's bytes) is read without a panic,
// and what WithTraceContext writes into them reads back.
func FuzzTraceContext(f *testing.F) {
	for _, s := range []string{
		`{"_meta":{"traceparent":"` + tp + `","tracestate":"k=v"}}`,
		`{"_meta":null}`, `{"_meta":{"traceparent":1}}`, `[]`, `null`, ``, `{"a":"\u0000","_meta":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parent, state := mcpwire.TraceContext(b)
		if len(parent) > 8<<10 || len(state) > 8<<10 {
			t.Fatalf("values longer than the bound: %d, %d", len(parent), len(state))
		}
		out, err := mcpwire.WithTraceContext(b, tp, "k=v")
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("WithTraceContext(%q) wrote invalid JSON %q", b, out)
		}
		if p, s := mcpwire.TraceContext(out); p != tp || s != "k=v" {
			t.Fatalf("WithTraceContext(%q) = %q reads back %q, %q", b, out, p, s)
		}
	})
}
