package a2awire_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
)

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":{"parts":[]}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"x","method":"GetTask","params":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, id, e := a2awire.ParseRequest(body)
		if (req == nil) == (e == nil) {
			t.Fatalf("request %v and error %v", req, e)
		}
		if !json.Valid(id) {
			t.Fatalf("id %q is not JSON", id)
		}
		if req != nil && req.Params != nil && !a2awire.IsObject(req.Params) {
			t.Fatalf("params %q are not an object", req.Params)
		}
		_, _ = a2awire.ReadSend(body)
		for _, op := range []a2awire.Op{a2awire.OpSend, a2awire.OpGetTask, a2awire.OpListTasks} {
			_, _ = a2awire.RewriteParams(op, body, upper)
		}
	})
}

func FuzzRewriteResult(f *testing.F) {
	f.Add([]byte(`{"task":{"id":"t","contextId":"c","status":{"state":"TASK_STATE_WORKING","message":{"taskId":"t","referenceTaskIds":["a"]}},"history":[{"taskId":"t"}]}}`))
	f.Add([]byte(`{"kind":"status-update","taskId":"t","contextId":"c","final":true,"status":{"state":"completed"}}`))
	f.Add([]byte(`{"tasks":[{"id":"t"}]}`))
	f.Fuzz(func(t *testing.T, result []byte) {
		for _, v := range []a2awire.Version{a2awire.V03, a2awire.V10} {
			for _, op := range []a2awire.Op{a2awire.OpSend, a2awire.OpSendStream, a2awire.OpGetTask, a2awire.OpListTasks} {
				out, _, err := a2awire.RewriteResult(v, op, result, upper)
				if err == nil && !json.Valid(out) {
					t.Fatalf("rewrote %q into invalid JSON %q", result, out)
				}
			}
		}
		_, _ = a2awire.ParseResponse(result)
	})
}

func FuzzEventReader(f *testing.F) {
	f.Add([]byte("data: {}\n\n: c\r\ndata:x\rdata:y\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := a2awire.NewEventReader(bytes.NewReader(stream), 256)
		for range 1000 {
			data, err := r.Next()
			if err != nil {
				return
			}
			if len(data) > 256 {
				t.Fatalf("event of %d bytes over the limit", len(data))
			}
		}
	})
}
