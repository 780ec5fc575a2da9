package mcpwire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// FuzzParse: Parse never panics; what it accepts is valid JSON whose
// members are slices of the input; Set on an accepted message keeps it
// valid and changes only that member.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b","arguments":{"x":1}}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`,
		`{"jsonrpc":"2.0","id":"x","result":{"content":[]}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}`,
		`[{"jsonrpc":"2.0"}]`, `{"a":"\u0000"}`, `{"jsonrpc":"2.0","id":1,"id":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mcpwire.Parse(b)
		if err != nil {
			var e *mcpwire.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if id := mcpwire.ParseID(b); !json.Valid(id) {
				t.Fatalf("ParseID returned invalid JSON %q", id)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		out, err := mcpwire.Set(b, "id", []byte(`"gw-1"`))
		if err != nil {
			t.Fatalf("Set on an accepted message: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("Set produced invalid JSON %q", out)
		}
		m2, err := mcpwire.Parse(out)
		if err != nil {
			if m.Kind() == mcpwire.KindNotification || m.Kind() == mcpwire.KindError {
				return // an id may turn a notification into a request, etc.
			}
			t.Fatalf("re-parse after Set: %v", err)
		}
		if string(m2.ID) != `"gw-1"` || m2.Method != m.Method || !bytes.Equal(m2.Params, m.Params) || !bytes.Equal(m2.Result, m.Result) {
			t.Fatalf("Set changed more than the id: %q → %q", b, out)
		}
	})
}

// FuzzEventReader: the reader never panics, never returns an event over
// its limit, and re-encoding what it read reads back the same.
func FuzzEventReader(f *testing.F) {
	f.Add([]byte("id: 1\nevent: message\ndata: {}\n\n"))
	f.Add([]byte("data: a\r\ndata: b\r\r: c\ndata\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := mcpwire.NewEventReader(bytes.NewReader(b), 4096)
		for range 100 {
			ev, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, mcpwire.ErrEventTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(ev.Data) > 4096 {
				t.Fatalf("event of %d bytes over the limit", len(ev.Data))
			}
			enc, err := mcpwire.AppendEvent(nil, ev)
			if err != nil {
				continue // ids with NUL etc. are refused on output
			}
			back, err := mcpwire.NewEventReader(bytes.NewReader(enc), 1<<20).Next()
			if err != nil || !bytes.Equal(back.Data, ev.Data) || back.ID != ev.ID || back.Name != ev.Name {
				t.Fatalf("round trip of %+v: %+v, %v", ev, back, err)
			}
		}
	})
}

// FuzzEnvelope: the envelope encoders write exactly what json.Marshal
// writes for the same members in a map, and fail exactly when it does.
func FuzzEnvelope(f *testing.F) {
	for _, s := range [][3]string{
		{`1`, `tools/call`, `{"name":"a__b","arguments":{"x":1}}`},
		{`"pc-1"`, `initialize`, "{ \"a\" : [1, 2,\n 3] }"},
		{`null`, `x<y>&z`, `{"html":"<b>&amp;</b>","sep":"\u2028\u2029"}`},
		{``, "m\u00e9thode\"\\", ``},
		{`{"bad"`, `ping`, `{}`},
		{`2`, `ping`, `{"a":}`},
		{`3`, "\xff", "\"\xff\""},
	} {
		f.Add([]byte(s[0]), s[1], []byte(s[2]))
	}
	f.Fuzz(func(t *testing.T, id []byte, method string, params []byte) {
		idRaw, paramsRaw := json.RawMessage(id), json.RawMessage(params)
		if len(id) == 0 {
			idRaw = nil
		}
		if len(params) == 0 {
			paramsRaw = nil
		}
		marshal := func(env map[string]any, key string, raw json.RawMessage) ([]byte, error) {
			if raw != nil {
				env[key] = raw
			}
			return json.Marshal(env)
		}
		check := func(name string, got []byte, gotErr error, want []byte, wantErr error) {
			t.Helper()
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("%s: error %v, json.Marshal's %v", name, gotErr, wantErr)
			}
			if wantErr == nil && !bytes.Equal(got, want) {
				t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
			}
		}
		got, err := mcpwire.NewRequest(idRaw, method, paramsRaw)
		want, werr := marshal(map[string]any{"jsonrpc": "2.0", "id": idRaw, "method": method}, "params", paramsRaw)
		check("NewRequest", got, err, want, werr)
		got, err = mcpwire.NewNotification(method, paramsRaw)
		want, werr = marshal(map[string]any{"jsonrpc": "2.0", "method": method}, "params", paramsRaw)
		check("NewNotification", got, err, want, werr)
		got, err = mcpwire.NewToolCallParams(method, paramsRaw)
		want, werr = json.Marshal(struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}{method, paramsRaw})
		check("NewToolCallParams", got, err, want, werr)
		got, err = mcpwire.NewResult(idRaw, paramsRaw)
		want, werr = marshal(map[string]any{"jsonrpc": "2.0", "id": idRaw}, "result", paramsRaw)
		check("NewResult", got, err, want, werr)
	})
}
