package limits_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/limits"
)

func TestCheckJSON(t *testing.T) {
	nested := func(n int) string { return rep(`{"a":`, n) + "1" + rep("}", n) }
	tests := []struct {
		name string
		doc  string
		max  int
		want string // "" for accepted
	}{
		{name: "empty", doc: "", max: 10},
		{name: "a schema", doc: `{"type":"object","properties":{"to":{"type":"string"}},"required":["to"]}`, max: 1000},
		{name: "nesting at the limit", doc: nested(limits.JSONNesting), max: 1 << 20},
		{name: "nesting over the limit", doc: nested(limits.JSONNesting + 1), max: 1 << 20, want: "objects and arrays nest more than 64 levels deep (at byte 320)"},
		{name: "arrays nest too", doc: rep("[", 100_000) + rep("]", 100_000), max: 1 << 20, want: "objects and arrays nest more than 64"},
		{name: "brackets in strings do not count", doc: `{"a":"` + rep("[{", 1000) + `\"` + rep("{", 100) + `"}`, max: 1 << 20},
		{name: "too long", doc: `{"a":"` + rep("x", 100) + `"}`, max: 50, want: "at most 50 bytes (this one has 108)"},
		{name: "not JSON is for the parser", doc: `}}}]]]{"`, max: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := limits.CheckJSON("doc", []byte(tt.doc), tt.max)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckJSON = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "doc: "+tt.want) || !errors.Is(err, limits.ErrExceeded) {
				t.Fatalf("CheckJSON = %v, want an ErrExceeded containing %q", err, "doc: "+tt.want)
			}
		})
	}
}
