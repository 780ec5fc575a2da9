package a2awire_test

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name, body string
		code       int
		id         string
	}{
		{name: "ok", body: `{"jsonrpc":"2.0","id":7,"method":"GetTask","params":{"id":"t"}}`, id: "7"},
		{name: "string id, no params", body: `{"jsonrpc":"2.0","id":"a","method":"GetExtendedAgentCard"}`, id: `"a"`},
		{name: "not JSON", body: `{"jsonrpc":`, code: a2awire.CodeParseError, id: "null"},
		{name: "not an object", body: `[1]`, code: a2awire.CodeInvalidRequest, id: "null"},
		{name: "no version", body: `{"id":1,"method":"GetTask"}`, code: a2awire.CodeInvalidRequest, id: "1"},
		{name: "notification", body: `{"jsonrpc":"2.0","method":"GetTask"}`, code: a2awire.CodeInvalidRequest, id: "null"},
		{name: "object id", body: `{"jsonrpc":"2.0","id":{},"method":"GetTask"}`, code: a2awire.CodeInvalidRequest, id: "null"},
		{name: "no method", body: `{"jsonrpc":"2.0","id":1}`, code: a2awire.CodeInvalidRequest, id: "1"},
		{name: "params not an object", body: `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":[1]}`, code: a2awire.CodeInvalidParams, id: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, id, e := a2awire.ParseRequest([]byte(tt.body))
			if string(id) != tt.id {
				t.Errorf("id = %s, want %s", id, tt.id)
			}
			if tt.code == 0 {
				if e != nil || req == nil {
					t.Fatalf("refused: %v", e)
				}
				return
			}
			if e == nil || e.Code != tt.code {
				t.Errorf("error = %v, want code %d", e, tt.code)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want a2awire.Version
		ok   bool
	}{
		{"", a2awire.V03, true}, {"0.3", a2awire.V03, true}, {"0.3.0", a2awire.V03, true},
		{"1.0", a2awire.V10, true}, {"1.0.2", a2awire.V10, true}, {"1", a2awire.V10, true},
		{"0.2", 0, false}, {"2.0", 0, false}, {"x", 0, false},
	}
	for _, tt := range tests {
		if got, ok := a2awire.ParseVersion(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCardVersion(t *testing.T) {
	card := func(v any) map[string]any {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	v1 := &a2a.AgentCard{Name: "x", SupportedInterfaces: []*a2a.AgentInterface{
		{URL: "http://a/grpc", ProtocolBinding: a2a.TransportProtocolGRPC, ProtocolVersion: "1.0"},
		{URL: "http://a/v03", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: "0.3"},
		{URL: "http://a/rpc", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: "1.0"},
	}}
	if v, ok := a2awire.CardVersion(card(v1), "http://a/rpc"); !ok || v != a2awire.V10 {
		t.Errorf("1.0 card at its 1.0 endpoint: %v, %v", v, ok)
	}
	if v, ok := a2awire.CardVersion(card(v1), "http://a/v03"); !ok || v != a2awire.V03 {
		t.Errorf("1.0 card at its 0.3 endpoint: %v, %v", v, ok)
	}
	if v, ok := a2awire.CardVersion(card(v1), "http://elsewhere"); !ok || v != a2awire.V03 {
		t.Errorf("1.0 card elsewhere (first JSON-RPC entry): %v, %v", v, ok)
	}
	old := card(json.RawMessage(`{"name":"x","url":"http://a/rpc","protocolVersion":"0.3.0","preferredTransport":"JSONRPC"}`))
	if v, ok := a2awire.CardVersion(old, "http://a/rpc"); !ok || v != a2awire.V03 {
		t.Errorf("0.3 card: %v, %v", v, ok)
	}
	grpcOnly := card(&a2a.AgentCard{Name: "x", SupportedInterfaces: []*a2a.AgentInterface{{URL: "http://a", ProtocolBinding: a2a.TransportProtocolGRPC, ProtocolVersion: "1.0"}}})
	if _, ok := a2awire.CardVersion(grpcOnly, "http://a"); ok {
		t.Error("a gRPC-only card offers a JSON-RPC version")
	}
}

func TestLookup(t *testing.T) {
	if a2awire.Lookup(a2awire.V10, "SendStreamingMessage") != a2awire.OpSendStream || a2awire.Lookup(a2awire.V03, "message/stream") != a2awire.OpSendStream {
		t.Error("streaming send not found")
	}
	if a2awire.Lookup(a2awire.V03, "ListTasks") != a2awire.OpUnknown || a2awire.Lookup(a2awire.V10, "tasks/get") != a2awire.OpUnknown {
		t.Error("a method of the other version was found")
	}
	if a2awire.MethodName(a2awire.V03, a2awire.OpSubscribe) != "tasks/resubscribe" || a2awire.MethodName(a2awire.V10, a2awire.OpSubscribe) != "SubscribeToTask" {
		t.Error("MethodName")
	}
}

func TestEventReader(t *testing.T) {
	stream := ": keep-alive\n\nid: 1\nevent: message\ndata: {\"a\":\ndata: 1}\n\nretry: 5\n\ndata:{\"b\":2}\r\n\r\ndata: {\"cut\":"
	r := a2awire.NewEventReader(strings.NewReader(stream), 1<<10)
	for _, want := range []string{"{\"a\":\n1}", `{"b":2}`} {
		got, err := r.Next()
		if err != nil || string(got) != want {
			t.Fatalf("Next = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a cut-off event: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := a2awire.NewEventReader(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 50).Next(); !errors.Is(err, a2awire.ErrEventTooLarge) {
		t.Errorf("an event over the limit: %v", err)
	}
	if _, err := a2awire.NewEventReader(strings.NewReader(""), 50).Next(); !errors.Is(err, io.EOF) {
		t.Errorf("empty stream: %v", err)
	}
	if got := string(a2awire.AppendEvent(nil, []byte(`{"x":1}`))); got != "data: {\"x\":1}\n\n" {
		t.Errorf("AppendEvent = %q", got)
	}
}

// upper maps every id to "gw-<kind>-<id>".
func upper(kind a2awire.IDKind, id string) (string, error) {
	return "gw-" + kind.String() + "-" + id, nil
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Results and events as the official Go SDK encodes them, for both
// versions: every id is mapped and the facts read.
func TestRewriteResult(t *testing.T) {
	msg := &a2a.Message{ID: "m1", Role: a2a.MessageRoleAgent, TaskID: "t1", ContextID: "c1", ReferenceTasks: []a2a.TaskID{"t0"}, Parts: a2a.ContentParts{a2a.NewTextPart("hi")}}
	task := &a2a.Task{ID: "t1", ContextID: "c1", Status: a2a.TaskStatus{State: a2a.TaskStateWorking, Message: msg}, History: []*a2a.Message{msg}}
	done := &a2a.Task{ID: "t1", ContextID: "c1", Status: a2a.TaskStatus{State: a2a.TaskStateCompleted}}
	status := &a2a.TaskStatusUpdateEvent{TaskID: "t1", ContextID: "c1", Status: a2a.TaskStatus{State: a2a.TaskStateInputRequired}}
	art := &a2a.TaskArtifactUpdateEvent{TaskID: "t1", ContextID: "c1", Artifact: &a2a.Artifact{ID: "a1", Parts: a2a.ContentParts{a2a.NewTextPart("x")}}}
	tests := []struct {
		name   string
		v      a2awire.Version
		op     a2awire.Op
		result json.RawMessage
		state  string
		final  bool
		tasks  int
	}{
		{"1.0 send task", a2awire.V10, a2awire.OpSend, mustJSON(t, a2a.StreamResponse{Event: task}), "TASK_STATE_WORKING", false, 0},
		{"1.0 send message", a2awire.V10, a2awire.OpSend, mustJSON(t, a2a.StreamResponse{Event: msg}), "", true, 0},
		{"1.0 status event", a2awire.V10, a2awire.OpSendStream, mustJSON(t, a2a.StreamResponse{Event: status}), "TASK_STATE_INPUT_REQUIRED", true, 0},
		{"1.0 artifact event", a2awire.V10, a2awire.OpSubscribe, mustJSON(t, a2a.StreamResponse{Event: art}), "", false, 0},
		{"1.0 get task", a2awire.V10, a2awire.OpGetTask, mustJSON(t, done), "TASK_STATE_COMPLETED", true, 0},
		{"1.0 list", a2awire.V10, a2awire.OpListTasks, mustJSON(t, a2a.ListTasksResponse{Tasks: []*a2a.Task{task, done}}), "", false, 2},
		{"0.3 send task", a2awire.V03, a2awire.OpSend, json.RawMessage(`{"kind":"task","id":"t1","contextId":"c1","status":{"state":"working","message":{"kind":"message","messageId":"m","role":"agent","parts":[],"taskId":"t1","contextId":"c1"}}}`), "working", false, 0},
		{"0.3 final status", a2awire.V03, a2awire.OpSendStream, json.RawMessage(`{"kind":"status-update","taskId":"t1","contextId":"c1","status":{"state":"working"},"final":true}`), "working", true, 0},
		{"0.3 artifact", a2awire.V03, a2awire.OpSubscribe, json.RawMessage(`{"kind":"artifact-update","taskId":"t1","contextId":"c1","artifact":{"artifactId":"a","parts":[]}}`), "", false, 0},
		{"0.3 message", a2awire.V03, a2awire.OpSend, json.RawMessage(`{"kind":"message","messageId":"m","role":"agent","parts":[],"contextId":"c1"}`), "", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, f, err := a2awire.RewriteResult(tt.v, tt.op, tt.result, upper)
			if err != nil {
				t.Fatal(err)
			}
			if f.State != tt.state || f.Final != tt.final || f.Tasks != tt.tasks {
				t.Errorf("facts = %+v, want state %q final %v tasks %d", f, tt.state, tt.final, tt.tasks)
			}
			if tt.op != a2awire.OpListTasks && (f.ContextID != "gw-contextId-c1" || (f.TaskID != "" && f.TaskID != "gw-taskId-t1")) {
				t.Errorf("facts ids = %+v", f)
			}
			s := string(out)
			for _, raw := range []string{`"t1"`, `"c1"`, `"t0"`} {
				if strings.Contains(s, raw) {
					t.Errorf("unmapped id %s in %s", raw, s)
				}
			}
		})
	}
}

func TestRewriteResultRefusesWrongShapes(t *testing.T) {
	tests := []struct {
		name   string
		v      a2awire.Version
		op     a2awire.Op
		result string
	}{
		{"not an object", a2awire.V10, a2awire.OpGetTask, `[]`},
		{"two members", a2awire.V10, a2awire.OpSendStream, `{"task":{},"message":{}}`},
		{"status for a send", a2awire.V10, a2awire.OpSend, `{"statusUpdate":{"taskId":"t"}}`},
		{"unknown 0.3 kind", a2awire.V03, a2awire.OpSendStream, `{"kind":"other"}`},
		{"numeric id", a2awire.V10, a2awire.OpGetTask, `{"id":5}`},
		{"bad references", a2awire.V10, a2awire.OpSend, `{"message":{"referenceTaskIds":[1]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := a2awire.RewriteResult(tt.v, tt.op, json.RawMessage(tt.result), upper); !errors.Is(err, a2awire.ErrShape) {
				t.Errorf("RewriteResult = %v, want ErrShape", err)
			}
		})
	}
}

func TestRewriteParamsAndSendFacts(t *testing.T) {
	req := &a2a.SendMessageRequest{
		Message:  &a2a.Message{ID: "m", Role: a2a.MessageRoleUser, TaskID: "t1", ContextID: "c1", ReferenceTasks: []a2a.TaskID{"t0"}, Parts: a2a.ContentParts{a2a.NewTextPart("hello")}},
		Metadata: map[string]any{"skill": "search", "n": 1.5},
		Config:   &a2a.SendMessageConfig{PushConfig: &a2a.PushConfig{URL: "https://evil.example/hook"}},
	}
	params := mustJSON(t, req)
	out, err := a2awire.RewriteParams(a2awire.OpSend, params, upper)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"gw-taskId-t1"`, `"gw-contextId-c1"`, `"gw-taskId-t0"`, `"n":1.5`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rewritten params %s lack %s", out, want)
		}
	}
	f, err := a2awire.ReadSend(params)
	if err != nil {
		t.Fatal(err)
	}
	if f.Skill != "search" || !f.PushConfig || f.MessageBytes == 0 || f.MetadataBytes == 0 {
		t.Errorf("facts = %+v", f)
	}
	for _, op := range []a2awire.Op{a2awire.OpGetTask, a2awire.OpCancelTask, a2awire.OpSubscribe} {
		out, err := a2awire.RewriteParams(op, json.RawMessage(`{"id":"t1","historyLength":3}`), upper)
		if err != nil || !strings.Contains(string(out), `"gw-taskId-t1"`) || !strings.Contains(string(out), `"historyLength":3`) {
			t.Errorf("%v params = %s, %v", op, out, err)
		}
		if id, _ := a2awire.RequestIDs(op, json.RawMessage(`{"id":"t1"}`)); id != "t1" {
			t.Errorf("RequestIDs(%v) = %q", op, id)
		}
	}
	out, err = a2awire.RewriteParams(a2awire.OpListTasks, json.RawMessage(`{"contextId":"c1","pageSize":10}`), upper)
	if err != nil || !strings.Contains(string(out), `"gw-contextId-c1"`) {
		t.Errorf("list params = %s, %v", out, err)
	}
	refuse := errors.New("not yours")
	if _, err := a2awire.RewriteParams(a2awire.OpGetTask, json.RawMessage(`{"id":"t1"}`), func(a2awire.IDKind, string) (string, error) { return "", refuse }); !errors.Is(err, refuse) {
		t.Errorf("a mapper's error: %v", err)
	}
}

func TestStateEndsStream(t *testing.T) {
	for _, s := range []string{"TASK_STATE_COMPLETED", "TASK_STATE_INPUT_REQUIRED", "canceled", "auth-required", "rejected", "failed"} {
		if !a2awire.StateEndsStream(s) {
			t.Errorf("%s does not end a stream", s)
		}
	}
	for _, s := range []string{"TASK_STATE_WORKING", "submitted", "", "unknown"} {
		if a2awire.StateEndsStream(s) {
			t.Errorf("%s ends a stream", s)
		}
	}
}

func TestFilterTasks(t *testing.T) {
	out, err := a2awire.FilterTasks(json.RawMessage(`{"tasks":[{"id":"1","contextId":"mine"},{"id":"2","contextId":"theirs"},{"id":"3"}],"nextPageToken":"","pageSize":3}`), "mine")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tasks []struct{ ID string } `json:"tasks"`
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got.Tasks) != 1 || got.Tasks[0].ID != "1" {
		t.Errorf("FilterTasks = %s, %v", out, err)
	}
	if _, err := a2awire.FilterTasks(json.RawMessage(`{"tasks":{}}`), "x"); !errors.Is(err, a2awire.ErrShape) {
		t.Errorf("tasks not a list: %v", err)
	}
}
