package authz

import (
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// TestArgumentsKeyFromAttributes: the decision key reads the arguments'
// attributes exactly as it would read the record made of them.
func TestArgumentsKeyFromAttributes(t *testing.T) {
	nested := types.NewRecord(types.RecordMap{"number": types.String("4111"), "exp": types.Long(12)})
	for _, attrs := range [][]attr{
		nil,
		{{name: "amount", value: types.Long(100)}},
		{{name: "amount", value: types.Long(100)}, {name: "card", value: nested}, {name: "tags", value: types.NewSet(types.String("b"), types.String("a"))}, {name: "to", value: types.String("bob")}},
	} {
		record := recordOf(attrs)
		want, wok := appendValue(nil, record)
		got, gok := appendAttrs(nil, attrs)
		if string(got) != string(want) || gok != wok {
			t.Errorf("whole arguments %v: %q, %v; record %q, %v", attrs, got, gok, want, wok)
		}
		for _, path := range [][]types.String{{}, {"amount"}, {"to"}, {"missing"}, {"card"}, {"card", "number"}, {"card", "missing"}, {"amount", "below"}, {"tags"}} {
			want, wok := appendPath(nil, record, path)
			got, gok := appendArgumentsPath(nil, attrs, path)
			if string(got) != string(want) || gok != wok {
				t.Errorf("%v at %v: %q, %v; record %q, %v", attrs, path, got, gok, want, wok)
			}
		}
	}
}
