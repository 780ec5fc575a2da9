package config_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
)

func BenchmarkCompile(b *testing.B) {
	data := configtest.Marshal(b, configtest.Snapshot())
	for b.Loop() {
		if _, err := config.Compile(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize decides a pipeline call through the adapter to the
// policy engine (package authz has the engine's own benchmarks).
func BenchmarkAuthorize(b *testing.B) {
	c := configtest.Compile(b, configtest.Snapshot())
	payer, _ := c.AgentByAPIKey(configtest.PayerKey, callAt)
	call := newCall(c, payer, configtest.PayAction, `{"amount": 100, "to": "bob", "memo": "rent"}`)
	for b.Loop() {
		if d := c.Authorize(context.Background(), call); !d.Allowed {
			b.Fatalf("denied: %+v", d)
		}
	}
}

func BenchmarkValidateArguments(b *testing.B) {
	c := configtest.Compile(b, configtest.Snapshot())
	pay, _ := c.Tool(configtest.PayAction)
	args := map[string]any{"amount": json.Number("100"), "to": "bob"}
	for b.Loop() {
		if err := pay.ValidateArguments(args); err != nil {
			b.Fatal(err)
		}
	}
}
