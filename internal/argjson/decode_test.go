package argjson

import (
	"encoding/json"
	"testing"
)

// FuzzDuplicateKeys: on valid JSON the byte scanner reports exactly what
// the decoder-based check reports.
func FuzzDuplicateKeys(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":{"a":[{"a":1},{"a":2}],"c":"\",}"},"d":[1,2,{"x":null}]}`, `{"a":1,"a":2}`,
		`{"a":{"b":1,"b":2}}`, `[{"a":1},{"a":1,"a":2}]`, `{"\u0061":1,"a":2}`, "{\"\xff\":1,\"\xfe\":2}",
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":3}`,
		`"s"`, `1`, `[]`, `{}`, ` { "a" : true , "b" : [ ] } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // checkDuplicateKeys decodes invalid JSON itself
		}
		got, want := validDuplicateKeys(b), decodeDuplicateKeys(b)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Fatalf("%q: scanner %v, decoder %v", b, got, want)
		}
	})
}
