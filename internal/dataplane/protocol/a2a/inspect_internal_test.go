package a2a

import (
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

func partsOf(t *testing.T, c content, p pipeline.Payload, msg string) []string {
	t.Helper()
	parts, err := c.Parts(p, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, part := range parts {
		if part.JSON != nil {
			got = append(got, part.Where+":"+string(part.JSON))
		} else {
			got = append(got, part.Where+"="+part.Text)
		}
	}
	return got
}

func TestContentParts(t *testing.T) {
	tests := []struct {
		name    string
		params  string
		payload pipeline.Payload
		msg     string
		want    []string // "where=text" or "where:json"
	}{
		{name: "1.0 send: the message's parts, not ids or metadata", payload: pipeline.PayloadArguments,
			params: `{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"book a flight"},{"data":{"city":"Oslo"}},{"file":{"uri":"https://x/y"}}],"metadata":{"skill":"travel"}},"metadata":{"note":"hidden"}}`,
			want:   []string{"params.message.parts[0].text=book a flight", `params.message.parts[1].data:{"city":"Oslo"}`}},
		{name: "0.3 send", payload: pipeline.PayloadArguments,
			params: ` {"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"}]}}`,
			want:   []string{"params.message.parts[0].text=hi"}},
		{name: "arguments are read from the params, not the message given", payload: pipeline.PayloadArguments,
			params: `{"message":{"parts":[{"text":"from params"}]}}`, msg: `{"message":{"parts":[{"text":"ignored"}]}}`,
			want: []string{"params.message.parts[0].text=from params"}},
		{name: "1.0 task: status message, artifacts, history", payload: pipeline.PayloadResult,
			msg: `{"task":{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED","message":{"parts":[{"text":"done"}]}},` +
				`"artifacts":[{"artifactId":"a","name":"n","parts":[{"text":"report"},{"data":{"rows":[1,2]}}]}],"history":[{"role":"ROLE_USER","parts":[{"text":"asked"}]}]}}`,
			want: []string{"result.task.status.message.parts[0].text=done", "result.task.artifacts[0].parts[0].text=report",
				`result.task.artifacts[0].parts[1].data:{"rows":[1,2]}`, "result.task.history[0].parts[0].text=asked"}},
		{name: "1.0 message", payload: pipeline.PayloadResult, msg: `{"message":{"role":"ROLE_AGENT","parts":[{"text":"hello"}]}}`,
			want: []string{"result.message.parts[0].text=hello"}},
		{name: "0.3 task", payload: pipeline.PayloadResult,
			msg:  `{"kind":"task","id":"t1","status":{"state":"completed"},"artifacts":[{"parts":[{"kind":"text","text":"r"}]}]}`,
			want: []string{"result.artifacts[0].parts[0].text=r"}},
		{name: "list of tasks", payload: pipeline.PayloadResult,
			msg:  `{"tasks":[{"id":"a","history":[{"parts":[{"text":"one"}]}]},{"id":"b","artifacts":[{"parts":[{"text":"two"}]}]}],"nextPageToken":""}`,
			want: []string{"result.tasks[0].history[0].parts[0].text=one", "result.tasks[1].artifacts[0].parts[0].text=two"}},
		{name: "1.0 status update event", payload: pipeline.PayloadFrame,
			msg:  `{"jsonrpc":"2.0","id":1,"result":{"statusUpdate":{"taskId":"t","status":{"state":"TASK_STATE_WORKING","message":{"parts":[{"text":"step 1"}]}}}}}`,
			want: []string{"result.statusUpdate.status.message.parts[0].text=step 1"}},
		{name: "0.3 artifact update event", payload: pipeline.PayloadFrame,
			msg:  `{"jsonrpc":"2.0","id":1,"result":{"kind":"artifact-update","taskId":"t","artifact":{"parts":[{"kind":"text","text":"chunk"}]}}}`,
			want: []string{"result.artifact.parts[0].text=chunk"}},
		{name: "an event without a result", payload: pipeline.PayloadFrame, msg: `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}`},
		{name: "parts that are not an array", payload: pipeline.PayloadResult, msg: `{"message":{"parts":"text"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := partsOf(t, content{params: []byte(tt.params)}, tt.payload, tt.msg)
			if !slices.Equal(got, tt.want) {
				t.Errorf("parts = %q, want %q", got, tt.want)
			}
		})
	}
	for _, bad := range []string{`{"message":{"parts":[{"text":"a"}]},"message":{}}`, `{"message":{"parts":[{"text":`, `{"task":{"history":[{"parts":[{"text":"a","text":"b"}]}]}}`} {
		if _, err := (content{}).Parts(pipeline.PayloadResult, []byte(bad)); err == nil {
			t.Errorf("Parts(%s) = nil error", bad)
		}
	}
}

func TestContentRewrite(t *testing.T) {
	c := content{}
	msg := []byte(`{"jsonrpc":"2.0","id":"x","result":{"artifactUpdate":{"artifact":{"parts":[{"text":"mail jane@example.com"},{"data":{"email":"jane@example.com"}},{"text":"keep"}]}}}}`)
	out, err := c.Rewrite(pipeline.PayloadFrame, msg, []inspect.Edit{
		{Part: 0, Text: "mail [REDACTED:pii.email]"},
		{Part: 1, JSON: []byte(`{"email":"[REDACTED:pii.email]"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"jsonrpc":"2.0","id":"x","result":{"artifactUpdate":{"artifact":{"parts":[{"text":"mail [REDACTED:pii.email]"},{"data":{"email":"[REDACTED:pii.email]"}},{"text":"keep"}]}}}}`
	if string(out) != want {
		t.Errorf("rewritten\n got  %s\n want %s", out, want)
	}
	if _, err := c.Rewrite(pipeline.PayloadFrame, msg, []inspect.Edit{{Part: 9, Text: "x"}}); err == nil {
		t.Error("an edit of a part that does not exist was accepted")
	}
	if _, err := (content{params: []byte(`{"message":{"parts":[{"text":"a"}]}}`)}).Rewrite(pipeline.PayloadArguments, nil, []inspect.Edit{{Part: 0, Text: "b"}}); err == nil {
		t.Error("a request was rewritten")
	}
}

func FuzzContentParts(f *testing.F) {
	f.Add(uint8(1), `{"message":{"parts":[{"text":"a"},{"data":{}}]}}`)
	f.Add(uint8(2), `{"task":{"status":{"message":{"parts":[{"text":"a"}]}},"artifacts":[{"parts":[{"text":"b"}]}]}}`)
	f.Add(uint8(3), `{"jsonrpc":"2.0","id":1,"result":{"kind":"status-update","status":{"message":{"parts":[{"kind":"text","text":"x"}]}}}}`)
	f.Fuzz(func(t *testing.T, payload uint8, msg string) {
		p := pipeline.Payload(payload%2 + 2) // result or frame: those are rewritten
		c := content{params: []byte(msg)}
		_, _ = c.Parts(pipeline.PayloadArguments, nil) // no panic; the stage reads what fails as text
		parts, err := c.Parts(p, []byte(msg))
		if err != nil {
			return
		}
		// Texts change; JSON parts are written back as they were.
		edits := make([]inspect.Edit, len(parts))
		for i, part := range parts {
			edits[i] = inspect.Edit{Part: i, Text: "x \"quoted\"", JSON: part.JSON}
		}
		out, err := c.Rewrite(p, []byte(msg), edits)
		if err != nil {
			t.Fatalf("Rewrite of what Parts read: %v", err)
		}
		again, err := c.Parts(p, out)
		if err != nil {
			t.Fatalf("Parts of the rewritten %q: %v", out, err)
		}
		if len(again) != len(parts) {
			t.Fatalf("rewritten %q has %d parts, had %d", out, len(again), len(parts))
		}
	})
}
