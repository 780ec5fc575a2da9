package detector_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/detector"
)

func TestCount(t *testing.T) {
	rows := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"id":%d,"name":"n%d"}`, i, i)
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	tests := []struct {
		name      string
		path      string
		doc       string
		want      int
		wantFound bool
		wantErr   bool
	}{
		{"top array", "$", rows(5), 5, true, false},
		{"member", "$.rows", `{"a":1,"rows":` + rows(7) + `,"b":[1,2]}`, 7, true, false},
		{"member without $", "rows", `{"rows":[1,2,3]}`, 3, true, false},
		{"quoted member", `$["the rows"]`, `{"the rows":[1,2]}`, 2, true, false},
		{"nested", "$.data.items", `{"data":{"x":"]}","items":[[1],[2],{"a":[3]}]}}`, 3, true, false},
		{"index", "$.pages[1]", `{"pages":[[1],[1,2,3],[1]]}`, 3, true, false},
		{"wildcard sums", "$.results[*].rows", `{"results":[{"rows":[1,2]},{"rows":[3]},{"other":1}]}`, 3, true, false},
		{"object members", "$.byId", `{"byId":{"a":1,"b":2}}`, 2, true, false},
		{"empty array", "$.rows", `{"rows":[]}`, 0, true, false},
		{"missing", "$.rows", `{"other":[1]}`, 0, false, false},
		{"scalar", "$.rows", `{"rows":5}`, 0, false, false},
		{"escaped key", "$.rows", `{"r\u006fws":[1,2]}`, 2, true, false},
		{"bad json", "$.rows", `{"rows":[1,2}`, 0, false, true},
		{"trailing garbage", "$", `[1] x`, 0, false, true},
		{"duplicate keys add up", "$.rows", `{"rows":[1],"rows":[2,3]}`, 3, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := detector.ParsePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			n, found, err := detector.Count([]byte(tt.doc), p)
			if (err != nil) != tt.wantErr || n != tt.want || found != tt.wantFound {
				t.Errorf("Count(%s) = %d, %t, %v; want %d, %t, error %t", tt.path, n, found, err, tt.want, tt.wantFound, tt.wantErr)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	for _, good := range []string{"$", "$.a", "a.b[0][*]", `$["x y"].z`, "$.a-b_c"} {
		if _, err := detector.ParsePath(good); err != nil {
			t.Errorf("ParsePath(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "$.", "$[", "$[x]", "$[-1]", "$..a", `$["x`, "$a b", strings.Repeat(".a", 17)} {
		if _, err := detector.ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) = nil error", bad)
		}
	}
}

func TestLeaves(t *testing.T) {
	doc := `{"a":"x","b":[1,"y",{"c":"z\n\u00e9"}],"d":{},"e":[],"f b":"w","g":null}`
	var got []string
	err := detector.Leaves([]byte(doc), func(l detector.Leaf) bool {
		got = append(got, detector.FormatPath("", l.Path)+"="+l.Value+"@"+doc[l.Start:l.End])
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`a=x@"x"`, `b[1]=y@"y"`, "b[2].c=z\né@\"z\\n\\u00e9\"", `["f b"]=w@"w"`}
	if !slices.Equal(got, want) {
		t.Errorf("leaves\n got  %q\n want %q", got, want)
	}
	for _, bad := range []string{`{"a":}`, `["a"`, `{"a" 1}`, `[1,]x`, `"unterminated`, `{"a":"b"}}`, `[}`} {
		if err := detector.Leaves([]byte(bad), func(detector.Leaf) bool { return true }); err == nil {
			t.Errorf("Leaves(%q) = nil error", bad)
		}
	}
	// A scalar document is one leaf or none.
	n := 0
	if err := detector.Leaves([]byte(` "top" `), func(detector.Leaf) bool { n++; return true }); err != nil || n != 1 {
		t.Errorf("scalar document: %d leaves, %v", n, err)
	}
}

// FuzzLeaves checks that Leaves never panics and, on valid JSON, yields
// exactly the strings encoding/json decodes.
func FuzzLeaves(f *testing.F) {
	for _, s := range []string{`{"a":"x","b":[1,"y",{"c":"z"}]}`, `[]`, `"s"`, `[[[[["deep"]]]]]`, `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []string
		err := detector.Leaves(b, func(l detector.Leaf) bool {
			got = append(got, l.Value)
			return true
		})
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		if errors.Is(err, detector.ErrTooDeep) {
			return
		}
		if err != nil {
			t.Fatalf("Leaves(%q): %v on valid JSON", b, err)
		}
		var want []string
		collect(v, &want)
		// Object member order differs: compare as multisets.
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Leaves(%q) = %q, want %q", b, got, want)
		}
	})
}

func collect(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		*out = append(*out, v)
	case []any:
		for _, x := range v {
			collect(x, out)
		}
	case map[string]any:
		for _, x := range v {
			collect(x, out)
		}
	}
}

// FuzzCount checks that Count never panics and agrees with encoding/json
// on valid documents for a one-member path.
func FuzzCount(f *testing.F) {
	f.Add([]byte(`{"rows":[1,2,3]}`), "$.rows")
	f.Add([]byte(`[{"r":[1]},{"r":[2,3]}]`), "$[*].r")
	f.Add([]byte(`{"a":{"b":[[]]}}`), `$.a["b"][0]`)
	f.Fuzz(func(t *testing.T, b []byte, path string) {
		p, err := detector.ParsePath(path)
		if err != nil {
			return
		}
		n, found, err := detector.Count(b, p)
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		if errors.Is(err, detector.ErrTooDeep) {
			return
		}
		if err != nil {
			t.Fatalf("Count(%q, %s): %v on valid JSON", b, path, err)
		}
		if n < 0 || (!found && n != 0) {
			t.Fatalf("Count(%q, %s) = %d, %t", b, path, n, found)
		}
		if path == "$.rows" {
			m, _ := v.(map[string]any)
			want := 0
			switch r := m["rows"].(type) {
			case []any:
				want = len(r)
			case map[string]any:
				want = len(r)
			}
			// Duplicate members add up in Count and the last wins in
			// encoding/json: compare only where "rows" is written once and
			// nothing is escaped.
			if strings.Count(string(b), `"rows"`) == 1 && !strings.Contains(string(b), `\`) {
				if n != want {
					t.Fatalf("Count(%q, $.rows) = %d, want %d", b, n, want)
				}
			}
		}
	})
}

func TestItems(t *testing.T) {
	doc := ` [ "a" , {"b":[1,2]}, 3 ] `
	items, err := detector.Items([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, doc[it.Start:it.End])
	}
	if want := []string{`"a"`, `{"b":[1,2]}`, `3`}; !slices.Equal(got, want) {
		t.Errorf("items = %q, want %q", got, want)
	}
	if items, err := detector.Items([]byte(`[]`)); err != nil || len(items) != 0 {
		t.Errorf("empty array: %v, %v", items, err)
	}
	for _, bad := range []string{`{}`, `[1,]`, `[1] 2`, `[`, ``} {
		if _, err := detector.Items([]byte(bad)); err == nil {
			t.Errorf("Items(%q) = nil error", bad)
		}
	}
	if s, err := detector.DecodeString([]byte(`"a\nb\u00e9"`)); err != nil || s != "a\nbé" {
		t.Errorf("DecodeString = %q, %v", s, err)
	}
	for _, bad := range []string{`"a`, `a`, `"a" `, `"\q"`} {
		if _, err := detector.DecodeString([]byte(bad)); err == nil {
			t.Errorf("DecodeString(%q) = nil error", bad)
		}
	}
}

func TestMembers(t *testing.T) {
	doc := ` {"a" : [1,{"x":"}"}], "b\u0063":"s", "d":{}} `
	ms, err := detector.Members([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Key+"="+doc[m.Start:m.End])
	}
	if want := []string{`a=[1,{"x":"}"}]`, `bc="s"`, `d={}`}; !slices.Equal(got, want) {
		t.Errorf("members = %q, want %q", got, want)
	}
	many := "{" + strings.Repeat(`"k":1,`, 0)
	for i := range 20 {
		many += fmt.Sprintf(`"k%d":%d,`, i, i)
	}
	if _, err := detector.Members([]byte(many + `"k3":0}`)); err == nil {
		t.Error("a repeated key among many was accepted")
	}
	for _, bad := range []string{`[]`, `{"a":1,"a":2}`, `{"a"}`, `{"a":1} x`, `{"a":1,}`, `{`} {
		if _, err := detector.Members([]byte(bad)); err == nil {
			t.Errorf("Members(%q) = nil error", bad)
		}
	}
}
