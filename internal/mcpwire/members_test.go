package mcpwire

import (
	"encoding/json"
	"slices"
	"testing"
)

// FuzzMembers: on valid JSON the scanner finds exactly the members, and
// returns exactly the errors, that encoding/json's decoder does.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b","arguments":{"x":[1,"]}",{"y":null}]}}}`,
		` { "a" : -1.5e+3 , "b":true,"c":false ,"d":null, "e":"\"}\\"} `, `{}`, `{ }`, `[1]`, `"s"`, `12`,
		`{"a":1,"a":2}`, `{"\u0061":1,"a":2}`, `{"é":{},"\u00e9":[]}`, "{\"\xff\":1,\"\xfe\":2}", `{"a":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // members decodes invalid JSON with the decoder itself
		}
		got, gerr := validMembers(nil, b)
		want, werr := decodeMembers(b)
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%q: scanner error %v, decoder error %v", b, gerr, werr)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: scanner found %+v, decoder %+v", b, got, want)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"demo__get_weather","arguments":{"city":"Oslo"},"_meta":{"progressToken":"p-17"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(msg); err != nil {
			b.Fatal(err)
		}
	}
}
