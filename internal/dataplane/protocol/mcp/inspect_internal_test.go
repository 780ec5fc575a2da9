package mcp

import (
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

func TestContentParts(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		payload pipeline.Payload
		msg     string
		want    []string // "where=text" or "where:json"
	}{
		{"tool arguments", "tools/call", pipeline.PayloadArguments, `{"q":"x"}`, []string{`arguments:{"q":"x"}`}},
		{"tool result", "tools/call", pipeline.PayloadResult,
			`{"content":[{"type":"text","text":"a\nb"},{"type":"image","data":"AAAA","mimeType":"image/png"},{"type":"resource","resource":{"uri":"x","text":"r"}}],"structuredContent":{"rows":[1]},"isError":false,"_meta":{"k":"hidden"}}`,
			[]string{"content[0].text=a\nb", "content[2].resource.text=r", `structuredContent:{"rows":[1]}`}},
		{"resource read", "resources/read", pipeline.PayloadResult,
			`{"contents":[{"uri":"a","text":"one"},{"uri":"b","blob":"AAAA"}]}`, []string{"contents[0].text=one"}},
		{"prompt", "prompts/get", pipeline.PayloadResult,
			`{"description":"d","messages":[{"role":"user","content":{"type":"text","text":"hi"}}]}`, []string{"description=d", "messages[0].content.text=hi"}},
		{"other result", "completion/complete", pipeline.PayloadResult, `{"completion":{"values":["a"]}}`, []string{`result:{"completion":{"values":["a"]}}`}},
		{"progress", "tools/call", pipeline.PayloadFrame,
			`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"message":"step"}}`, []string{"params.message=step"}},
		{"log data object", "tools/call", pipeline.PayloadFrame,
			`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":{"a":"b"}}}`, []string{`params.data:{"a":"b"}`}},
		{"log data string", "tools/call", pipeline.PayloadFrame,
			`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"line"}}`, []string{"params.data=line"}},
		{"elicitation", "tools/call", pipeline.PayloadFrame,
			`{"jsonrpc":"2.0","id":1,"method":"elicitation/create","params":{"message":"ok?"}}`, []string{`params:{"message":"ok?"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, err := content{method: tt.method}.Parts(tt.payload, []byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range parts {
				if p.JSON != nil {
					got = append(got, p.Where+":"+string(p.JSON))
				} else {
					got = append(got, p.Where+"="+p.Text)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("parts = %q, want %q", got, tt.want)
			}
		})
	}
	for _, bad := range []string{`{"content":[{"type":"text","text":"a"}],"content":[]}`, `[1]`, `{"content":`} {
		if _, err := (content{method: "tools/call"}).Parts(pipeline.PayloadResult, []byte(bad)); err == nil {
			t.Errorf("Parts(%s) = nil error", bad)
		}
	}
}

func TestContentRewrite(t *testing.T) {
	c := content{method: "tools/call"}
	msg := []byte(`{"content":[{"type":"text","text":"mail jane@example.com"},{"type":"text","text":"keep"}],"structuredContent":{"email":"jane@example.com"}}`)
	out, err := c.Rewrite(pipeline.PayloadResult, msg, []inspect.Edit{
		{Part: 0, Text: "mail [REDACTED:pii.email]"},
		{Part: 2, JSON: []byte(`{"email":"[REDACTED:pii.email]"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"content":[{"type":"text","text":"mail [REDACTED:pii.email]"},{"type":"text","text":"keep"}],"structuredContent":{"email":"[REDACTED:pii.email]"}}`
	if string(out) != want {
		t.Errorf("rewritten\n got  %s\n want %s", out, want)
	}
	if _, err := c.Rewrite(pipeline.PayloadResult, msg, []inspect.Edit{{Part: 9, Text: "x"}}); err == nil {
		t.Error("an edit of a part that does not exist was accepted")
	}
}

func FuzzContentParts(f *testing.F) {
	f.Add("tools/call", uint8(2), `{"content":[{"type":"text","text":"a"}],"structuredContent":{}}`)
	f.Add("tools/call", uint8(3), `{"jsonrpc":"2.0","method":"notifications/progress","params":{"message":"m"}}`)
	f.Add("prompts/get", uint8(2), `{"messages":[{"content":{"text":"x"}}]}`)
	f.Fuzz(func(t *testing.T, method string, payload uint8, msg string) {
		c := content{method: method}
		p := pipeline.Payload(payload%3 + 1)
		parts, err := c.Parts(p, []byte(msg))
		if err != nil {
			return
		}
		// Texts change; JSON parts are written back as they were (inspection
		// rewrites only the strings inside them).
		edits := make([]inspect.Edit, len(parts))
		for i, part := range parts {
			edits[i] = inspect.Edit{Part: i, Text: "x \"quoted\"", JSON: part.JSON}
		}
		out, err := c.Rewrite(p, []byte(msg), edits)
		if err != nil {
			t.Fatalf("Rewrite of what Parts read: %v", err)
		}
		again, err := c.Parts(p, out)
		if err != nil && p != pipeline.PayloadArguments {
			t.Fatalf("Parts of the rewritten %q: %v", out, err)
		}
		if err == nil && len(again) != len(parts) {
			t.Fatalf("rewritten %q has %d parts, had %d", out, len(again), len(parts))
		}
	})
}
