package jsontext_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/jsontext"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       string // "" for accepted; else a substring of the reason
	}{
		{"plain", `{"a":[1,2,{"b":"c"}]}`, ""},
		{"unicode", `{"city":"Zürich 東京 🙂"}`, ""},
		{"escaped pair", `{"e":"\ud83d\ude42"}`, ""},
		{"escaped bmp", `{"e":"\u00fc\u0041"}`, ""},
		{"escaped backslash before u", `{"e":"\\ud800"}`, ""},
		{"brackets in strings", `{"e":"[[[[{{{{"}`, ""},
		{"quote escape", `{"e":"a\"[[[["}`, ""},
		{"invalid byte", "{\"a\":\"\xff\"}", "not valid UTF-8"},
		{"truncated rune", "{\"a\":\"\xe6\x9d\"}", "not valid UTF-8"},
		{"lone high", `{"a":"\ud800"}`, "lone surrogate"},
		{"lone high then text", `{"a":"\ud800abcdef"}`, "lone surrogate"},
		{"lone low", `{"a":"\udc00"}`, "lone surrogate"},
		{"high then high", `{"a":"\ud800\ud800"}`, "lone surrogate"},
		{"lone high upper case", `{"a":"\uD83D"}`, "lone surrogate"},
		{"deep", strings.Repeat("[", 65) + strings.Repeat("]", 65), "deeper than 64"},
		{"deep objects", strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), "deeper than 64"},
		{"at the limit", strings.Repeat("[", 64) + strings.Repeat("]", 64), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := jsontext.Check([]byte(tc.text), jsontext.DefaultMaxDepth)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check(%q) = %v, want accepted", tc.text, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check(%q) = %v, want an error with %q", tc.text, err, tc.want)
			}
			var je *jsontext.Error
			if err != nil && !errors.As(err, &je) {
				t.Fatalf("error %T, want *jsontext.Error", err)
			}
		})
	}
}

// FuzzCheck: Check never panics, and accepts only UTF-8 text in which
// Go's decoder changes no string (what is judged is what is forwarded).
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":"\ud83d\ude42"}`, `"\ud800"`, "\xff", `[[["x"]]]`, `"\u12"`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := jsontext.Check(b, 8)
		if err != nil || !json.Valid(b) {
			return
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		if strings.ContainsRune(flatten(v), '\uFFFD') && !strings.Contains(string(b), "\uFFFD") && !strings.Contains(strings.ToLower(string(b)), `\ufffd`) {
			t.Fatalf("Check accepted %q, which decodes with a replacement character", b)
		}
	})
}

func flatten(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			b.WriteString(x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				b.WriteString(k)
				walk(e)
			}
		}
	}
	walk(v)
	return b.String()
}
