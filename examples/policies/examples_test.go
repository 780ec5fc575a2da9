// Package policies_test checks that the example policy sets stay valid
// against the schema the gateway generates for the demo upstream's tools.
package policies_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

// exampleLists are the value lists the examples may refer to; each
// example's comments say how to create them. A reference to any other list
// would be refused at apply time, so it is refused here.
var exampleLists = map[string]bool{"approved-payees": true}

// exampleLearned are the value lists that learn, which the examples may
// read as context.learned["<name>"]; each example says how to make them
// learn.
var exampleLearned = []string{"payees"}

func TestExamplesValidateAgainstTheDemoSchema(t *testing.T) {
	h := demo.NewHandler(demo.Options{Logger: slog.New(slog.DiscardHandler)})
	defer h.Close()
	defs, err := h.Definitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var tools []cedarschema.Tool
	for _, d := range defs {
		var def struct {
			InputSchema json.RawMessage `json:"inputSchema"`
		}
		if err := json.Unmarshal(d.JSON, &def); err != nil {
			t.Fatal(err)
		}
		tools = append(tools, cedarschema.Tool{
			Action:      cedarschema.ActionName("demo", d.Name),
			Upstream:    "demo",
			Name:        d.Name,
			InputSchema: def.InputSchema,
		})
	}
	schema, err := cedarschema.Generate(tools, cedarschema.WithLearned(exampleLearned))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.cedar")
	if err != nil || len(files) < 5 {
		t.Fatalf("found %d example files (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			set, err := schema.ParsePolicies("example", f, src)
			if err != nil {
				t.Fatalf("%s does not validate:\n%v", f, err)
			}
			if len(set.Policies) == 0 {
				t.Fatalf("%s has no policies", f)
			}
			for _, p := range set.Policies {
				for _, l := range cedarschema.LearnedRefs((*ast.Policy)(p.Policy.AST())) {
					if !strings.Contains(string(src), "gwctl valuelist learn "+l) {
						t.Errorf("%s reads learned list %q but does not say how to make it learn", f, l)
					}
				}
			}
			for _, l := range set.Lists() {
				if !exampleLists[l] {
					t.Errorf("%s refers to value list %q, which no example documents", f, l)
				} else if !strings.Contains(string(src), "gwctl valuelist create "+l) {
					t.Errorf("%s refers to value list %q but does not say how to create it", f, l)
				}
			}
		})
	}
}
