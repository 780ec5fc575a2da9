package toolcompat_test

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/toolcompat"
)

// FuzzCheck feeds the checker definitions an upstream could send: it
// never panics, a definition is compatible with itself, and a report
// stays within its bounds.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(`{"name":"t","inputSchema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}`),
		[]byte(`{"name":"t","inputSchema":{"type":"object","properties":{"a":{"enum":["x",1e3]}},"additionalProperties":false},"outputSchema":{"type":"array","items":{"minimum":-1}}}`))
	f.Add([]byte(`{"inputSchema":true}`), []byte(`{"inputSchema":{"anyOf":[{"$ref":"#"}]}}`))
	f.Add([]byte(`{"inputSchema":{"multipleOf":0.1,"exclusiveMinimum":true,"minimum":1e400}}`), []byte(`{"inputSchema":{"items":[{}],"pattern":"(["}}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		r := toolcompat.Check(toolcompat.Side{Label: "a", Definition: a}, toolcompat.Side{Label: "b", Definition: b})
		if len(r.Differences) > toolcompat.MaxDifferences {
			t.Fatalf("%d differences", len(r.Differences))
		}
		if self := toolcompat.Check(toolcompat.Side{Label: "a", Definition: a}, toolcompat.Side{Label: "a", Definition: a}); self.Verdict != toolcompat.Compatible && self.Verdict != toolcompat.Unknown {
			t.Fatalf("a definition is %s with itself", self.Verdict)
		}
	})
}
