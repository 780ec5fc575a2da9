package auditredact

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// walk is the reference encoder writes by: a redacted copy of v, which
// json.Marshal then writes.
func (r *Redactor) walk(v any, path []string, onPath bool) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			lk := strings.ToLower(k)
			p := append(path[:len(path):len(path)], lk)
			full, prefix := r.matchPath(p, onPath)
			if full || r.named(lk) || secretName(lk) {
				out[k] = Redacted
				continue
			}
			out[k] = r.walk(x, p, prefix)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = r.walk(x, path, onPath)
		}
		return out
	case string:
		if kind := Detect(v); kind != "" {
			return "[REDACTED:" + kind + "]"
		}
		return v
	default:
		return v
	}
}

// referenceArguments is Arguments through walk and json.Marshal.
func (r *Redactor) referenceArguments(raw []byte, decoded any) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return ""
	}
	v := decoded
	if v == nil {
		d := json.NewDecoder(bytes.NewReader(trimmed))
		d.UseNumber()
		if err := d.Decode(&v); err != nil || d.More() {
			return invalidJSON
		}
	}
	out, err := json.Marshal(r.walk(v, nil, true))
	if err != nil {
		return invalidJSON
	}
	return cut(string(out), r.max())
}

// FuzzArgumentsEncoding: Arguments writes exactly what json.Marshal
// writes for the redacted copy of the arguments.
func FuzzArgumentsEncoding(f *testing.F) {
	for _, s := range []string{
		`{"password":"hunter2","card":{"number":"4111","exp":"1/30"},"items":[{"token":"a","x":null}]}`,
		`{"s":"<a href=\"x\">&amp;</a>\b\f\n\r\t\u0001\u001f\u007f\u2028\u2029 é 😀","\u00e9":1}`,
		"{\"bad\":\"\xff\xfe\xed\xa0\x80\",\"\xc3\":true}",
		`{"n":[-0,1.5e+10,2E-3,0.0,123456789012345678901234567890],"b":[true,false],"e":{},"a":[]}`,
		`{"Card":{"Number":1},"h":"Basic YWxpY2U6aHVudGVyMg=="}`,
		`[1,"x",{"a":{"b":{"c":{"d":[{"e":"f"}]}}}}]`, `"just a string"`, `17`,
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17}`,
	} {
		f.Add(s)
	}
	configured, _ := New([]string{"password", "card.number", "/items/token"})
	redactors := []*Redactor{nil, configured, configured.WithMaxBytes(64)}
	f.Fuzz(func(t *testing.T, in string) {
		for _, r := range redactors {
			if got, want := r.Arguments(json.RawMessage(in), nil), r.referenceArguments([]byte(in), nil); got != want {
				t.Fatalf("Arguments(%q)\n got %s\nwant %s", in, got, want)
			}
		}
	})
}

// TestArgumentsNumbers: a json.Number in decoded arguments is written, or
// refused, as json.Marshal writes or refuses it.
func TestArgumentsNumbers(t *testing.T) {
	for _, n := range []string{"", "0", "-0", "01", "1.", ".5", "1.5", "1e", "1e+", "1e+5", "1E-05", "-", "1ea", "1e-x", "12.34e56", "0x1", "+1", " 1", "1 "} {
		decoded := map[string]any{"n": json.Number(n), "f": 1.5, "i": 7}
		var r *Redactor
		if got, want := r.Arguments(json.RawMessage(`{}`), decoded), r.referenceArguments([]byte(`{}`), decoded); got != want {
			t.Errorf("Number %q: got %s, want %s", n, got, want)
		}
	}
}

// TestArgumentsAllocations: the redacted text of small arguments is built
// without an intermediate copy.
func TestArgumentsAllocations(t *testing.T) {
	decoded := map[string]any{"city": "Oslo", "days": json.Number("3")}
	raw := json.RawMessage(`{"city":"Oslo","days":3}`)
	var r *Redactor
	if n := testing.AllocsPerRun(100, func() { _ = r.Arguments(raw, decoded) }); n > 1 {
		t.Errorf("%v allocations, want at most 1 (the result)", n)
	}
}
