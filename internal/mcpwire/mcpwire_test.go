package mcpwire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

func TestParseClassifiesAndKeepsRawMembers(t *testing.T) {
	for _, tt := range []struct {
		in     string
		kind   mcpwire.Kind
		id     string
		method string
	}{
		{`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`, mcpwire.KindRequest, `7`, "tools/call"},
		{`{"jsonrpc":"2.0","id":"a-1","method":"ping"}`, mcpwire.KindRequest, `"a-1"`, "ping"},
		{` {"method":"notifications/progress","jsonrpc":"2.0","params":{"progress":1}} `, mcpwire.KindNotification, ``, "notifications/progress"},
		{`{"jsonrpc":"2.0","id":1.5e3,"result":{"x":[1,2,{"y":null}]}}`, mcpwire.KindResult, `1.5e3`, ""},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}`, mcpwire.KindError, `null`, ""},
	} {
		m, err := mcpwire.Parse([]byte(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if m.Kind() != tt.kind || string(m.ID) != tt.id || m.Method != tt.method {
			t.Errorf("%s: kind %v id %q method %q", tt.in, m.Kind(), m.ID, m.Method)
		}
	}
}

func TestParseRefusesWithTheSpecsCodes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		code int
		id   string
	}{
		{``, mcpwire.CodeParseError, "null"},
		{`{"jsonrpc":"2.0","id":1,`, mcpwire.CodeParseError, "null"},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, mcpwire.CodeInvalidRequest, "null"},
		{`[1,`, mcpwire.CodeParseError, "null"},
		{`"hello"`, mcpwire.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"1.0","id":3,"method":"ping"}`, mcpwire.CodeInvalidRequest, "3"},
		{`{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}`, mcpwire.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","id":null,"method":"ping"}`, mcpwire.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","id":4,"method":"ping","id":5}`, mcpwire.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","id":6,"method":""}`, mcpwire.CodeInvalidRequest, "6"},
		{`{"jsonrpc":"2.0","id":6,"method":7}`, mcpwire.CodeInvalidRequest, "6"},
		{`{"jsonrpc":"2.0","id":8,"method":"x","params":[1]}`, mcpwire.CodeInvalidParams, "8"},
		{`{"jsonrpc":"2.0","id":9,"method":"x","result":{}}`, mcpwire.CodeInvalidRequest, "9"},
		{`{"jsonrpc":"2.0","result":{}}`, mcpwire.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","id":1,"method":"x"} {}`, mcpwire.CodeParseError, "null"},
	} {
		_, err := mcpwire.Parse([]byte(tt.in))
		var e *mcpwire.Error
		if !errors.As(err, &e) || e.Code != tt.code {
			t.Errorf("%q: err = %v, want code %d", tt.in, err, tt.code)
			continue
		}
		if got := string(mcpwire.ParseID([]byte(tt.in))); got != tt.id {
			t.Errorf("%q: ParseID = %s, want %s", tt.in, got, tt.id)
		}
	}
}

func TestSetKeepsEveryOtherByte(t *testing.T) {
	in := []byte("{ \"jsonrpc\" : \"2.0\",\n \"id\" : 17 , \"method\":\"tools/call\", \"params\": {\"name\" :\"gh__create_issue\", \"x-unknown\": {\"deep\": [1,2,3]}, \"arguments\":{}} }")
	out, err := mcpwire.Set(in, "id", []byte(`"gw-1"`))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(string(in), "17", `"gw-1"`, 1)
	if string(out) != want {
		t.Errorf("Set id:\n got %s\nwant %s", out, want)
	}
	out, err = mcpwire.SetPath(out, []string{"params", "name"}, []byte(`"create_issue"`))
	if err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(want, `"gh__create_issue"`, `"create_issue"`, 1)
	if string(out) != want {
		t.Errorf("SetPath params.name:\n got %s\nwant %s", out, want)
	}
	// Appending a member that is absent.
	out, err = mcpwire.SetPath([]byte(`{"params":{}}`), []string{"params", "_meta"}, []byte(`{"a":1}`))
	if err != nil || string(out) != `{"params":{"_meta":{"a":1}}}` {
		t.Errorf("append into empty object: %s, %v", out, err)
	}
	out, err = mcpwire.Set([]byte(`{"a":1}`), "b", []byte(`2`))
	if err != nil || string(out) != `{"a":1,"b":2}` {
		t.Errorf("append: %s, %v", out, err)
	}
	if _, err := mcpwire.SetPath([]byte(`{"params":[1]}`), []string{"params", "name"}, []byte(`1`)); err == nil {
		t.Error("SetPath into an array: no error")
	}
}

func TestSSERoundTrip(t *testing.T) {
	msgs := [][]byte{
		[]byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}`),
		[]byte("{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 1,\n  \"result\": {}\n}"),
	}
	var stream []byte
	stream = append(stream, ": keep-alive comment\n\n"...)
	for i, m := range msgs {
		var err error
		stream, err = mcpwire.AppendEvent(stream, &mcpwire.Event{ID: "s1-" + string(rune('0'+i)), Name: "message", Data: m})
		if err != nil {
			t.Fatal(err)
		}
	}
	stream = append(stream, "id: s1-9\n\n"...) // an id-only event updates the last id
	r := mcpwire.NewEventReader(bytes.NewReader(stream), 1<<20)
	for i, m := range msgs {
		ev, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ev.Data, m) || ev.Name != "message" || ev.ID != "s1-"+string(rune('0'+i)) {
			t.Errorf("event %d = %+v, want data %s", i, ev, m)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last event: %v, want EOF", err)
	}
	if r.LastID() != "s1-9" {
		t.Errorf("LastID = %q", r.LastID())
	}
}

func TestSSEReaderHandlesLineEndingsAndLimits(t *testing.T) {
	r := mcpwire.NewEventReader(strings.NewReader("data: a\r\ndata:b\rretry: 300\r\n\r\ndata: cut off"), 1<<10)
	ev, err := r.Next()
	if err != nil || string(ev.Data) != "a\nb" || ev.Retry != 300 {
		t.Fatalf("event = %+v, %v", ev, err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("a partial event at the end: %v, want EOF (discarded)", err)
	}
	big := "data: " + strings.Repeat("x", 2048) + "\n\n"
	if _, err := mcpwire.NewEventReader(strings.NewReader(big), 1024).Next(); !errors.Is(err, mcpwire.ErrEventTooLarge) {
		t.Errorf("oversized event: %v", err)
	}
	// Many small lines add up to the limit too.
	many := strings.Repeat("data: xxxxxxxxxx\n", 200) + "\n"
	if _, err := mcpwire.NewEventReader(strings.NewReader(many), 1024).Next(); !errors.Is(err, mcpwire.ErrEventTooLarge) {
		t.Errorf("oversized multi-line event: %v", err)
	}
	if _, err := mcpwire.AppendEvent(nil, &mcpwire.Event{ID: "a\nb", Data: []byte("x")}); err == nil {
		t.Error("an id with a newline was written")
	}
}

func TestNewMessages(t *testing.T) {
	b, err := mcpwire.NewRequest(json.RawMessage(`5`), "ping", nil)
	if err != nil || string(b) != `{"id":5,"jsonrpc":"2.0","method":"ping"}` {
		t.Errorf("NewRequest = %s, %v", b, err)
	}
	if _, err := mcpwire.NewResult(json.RawMessage(`5`), json.RawMessage(`{bad`)); err == nil {
		t.Error("NewResult accepted invalid JSON")
	}
	e := mcpwire.NewError(nil, &mcpwire.Error{Code: -32600, Message: "no", Data: func() {}})
	if string(e) != `{"error":{"code":-32600,"message":"no"},"id":null,"jsonrpc":"2.0"}` {
		t.Errorf("NewError with bad data = %s", e)
	}
}

// TestSSEReaderSkipsEveryShapeWithoutAMessage: what the 2025-11-25 spec and
// the event-stream format allow before or between messages — a priming
// event (an id and one empty data line, as the Go SDK sends with an event
// store), comments, retry fields, a lone id, blank data lines — never
// reaches a JSON parser, and the ids still count for resumption.
func TestSSEReaderSkipsEveryShapeWithoutAMessage(t *testing.T) {
	stream := "id: prime-1\ndata: \n\n" + // priming event
		"id: prime-2\ndata:\n\n" + // priming without the space
		": keep-alive comment\n\n" +
		"retry: 1000\n\n" +
		"id: lone\n\n" +
		"event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\n" + "data: \"id\":1,\"result\":{}}\n\n"
	r := mcpwire.NewEventReader(strings.NewReader(stream), 1<<10)
	ev, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Data) != "{\"jsonrpc\":\"2.0\",\n\"id\":1,\"result\":{}}" || ev.ID != "7" {
		t.Fatalf("first event with data = %+v", ev)
	}
	if _, err := mcpwire.Parse(ev.Data); err != nil {
		t.Fatalf("multi-line data does not parse: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the message: %v, want EOF", err)
	}

	only := mcpwire.NewEventReader(strings.NewReader("id: prime-9\ndata: \n\n"), 1<<10)
	if _, err := only.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("a stream of only a priming event: %v, want EOF", err)
	}
	if only.LastID() != "prime-9" {
		t.Fatalf("LastID after a priming event = %q, want prime-9", only.LastID())
	}
}
