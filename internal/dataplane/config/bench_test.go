package config_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

func BenchmarkCompile(b *testing.B) {
	data := configtest.Marshal(b, configtest.Snapshot())
	for b.Loop() {
		if _, err := config.Compile(data); err != nil {
			b.Fatal(err)
		}
	}
}

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

// BenchmarkAuthorizeScale decides a call that exactly one of n permits
// allows (see configtest.Scale), evaluating every policy ("full"), a
// PolicySet assembled per request from the index ("assembled"), the
// index's buckets in place ("indexed", the cache off) and with the decision
// cache hit ("cached").
func BenchmarkAuthorizeScale(b *testing.B) {
	for _, n := range []int{10, 1_000, 10_000} {
		data := configtest.Marshal(b, configtest.Scale(n))
		plain, err := config.Compile(data, config.WithDecisionCache(0))
		if err != nil {
			b.Fatal(err)
		}
		cached, err := config.Compile(data)
		if err != nil {
			b.Fatal(err)
		}
		agent := configtest.Scale(n).Agents[7]
		modes := []struct {
			name   string
			decide func(*pipeline.Call) pipeline.Decision
		}{
			{"full", plain.AuthorizeUnindexed},
			{"assembled", plain.AuthorizeAssembled},
			{"indexed", func(call *pipeline.Call) pipeline.Decision { return plain.Authorize(context.Background(), call) }},
			{"cached", func(call *pipeline.Call) pipeline.Decision { return cached.Authorize(context.Background(), call) }},
		}
		for _, m := range modes {
			b.Run(fmt.Sprintf("policies=%d/%s", n+configtest.ScaleForbids, m.name), func(b *testing.B) {
				call := newCall(plain, agent, configtest.ScaleAction(7), `{"amount": 100, "to": "bob"}`)
				for b.Loop() {
					if d := m.decide(call); !d.Allowed {
						b.Fatalf("denied: %+v", d)
					}
				}
			})
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
