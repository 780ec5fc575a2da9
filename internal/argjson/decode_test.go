package argjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDuplicateKeys: on valid JSON the one-pass decoder reports the
// duplicate the decoder-based check reports and, without one, decodes what
// encoding/json decodes.
func FuzzDuplicateKeys(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":{"a":[{"a":1},{"a":2}],"c":"\",}"},"d":[1,2,{"x":null}]}`, `{"a":1,"a":2}`,
		`{"a":{"b":1,"b":2}}`, `[{"a":1},{"a":1,"a":2}]`, `{"\u0061":1,"a":2}`, "{\"\xff\":1,\"\xfe\":2}",
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":3}`,
		`"s"`, `1`, `[]`, `{}`, ` { "a" : true , "b" : [ ] } `,
		`{"s":"Z\u00fcrich \ud83d\ude00 \ud800","t":"Zürich","n":[-1.5e+3,0,1E-2],"b":[true,false,null]}`,
		"{\"s\":\"\xff\xfe\",\"e\":\"\xed\xa0\x80\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // Decode decodes invalid JSON with encoding/json itself
		}
		d := validDecoder{data: b}
		got, err := d.value()
		if want := decodeDuplicateKeys(b); (err == nil) != (want == nil) || err != nil && err.Error() != want.Error() {
			t.Fatalf("%q: one pass %v, decoder %v", b, err, want)
		}
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("%q: encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: one pass %#v, encoding/json %#v", b, got, want)
		}
	})
}
