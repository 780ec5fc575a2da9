package cedarschema_test

import (
	"bytes"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// TestGenerateTypesEachSchemaByContent: Generate remembers how it typed an
// input schema; the same schema again gives the same declarations, and
// another schema for the same action (a first and a second version of
// it) gives its own, whatever was generated before.
func TestGenerateTypesEachSchemaByContent(t *testing.T) {
	const policy = `permit(principal, action == Action::"up__t0", resource) when { context.arguments.amount > 5 };`
	for i, tc := range []struct {
		typ   string
		valid bool
	}{{"integer", true}, {"string", false}, {"integer", true}, {"boolean", false}} {
		first := mustGenerate(t, scopedTools(tc.typ))
		again := mustGenerate(t, scopedTools(tc.typ))
		if !bytes.Equal(first.Cedar(), again.Cedar()) {
			t.Fatalf("step %d: the same tools generated different schemas", i)
		}
		_, err := first.ParsePolicies("s", "s.cedar", []byte(policy))
		if (err == nil) != tc.valid {
			t.Errorf("step %d: amount of type %s: policy error %v, want valid %v", i, tc.typ, err, tc.valid)
		}
	}
	// An invalid schema fails every time, not only the first.
	for range 2 {
		if _, err := cedarschema.Generate([]cedarschema.Tool{{Action: "up__t0", InputSchema: []byte(`{`)}}); err == nil {
			t.Fatal("Generate accepted an input schema that is not JSON")
		}
	}
}
