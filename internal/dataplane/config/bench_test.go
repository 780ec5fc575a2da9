package config_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
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
	pay, _ := c.Tool(configtest.PayAction, nil)
	args := map[string]any{"amount": json.Number("100"), "to": "bob"}
	for b.Loop() {
		if err := pay.ValidateArguments(args); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShadowCounterpart is the extra decision shadow evaluation
// makes per call (the candidate's), beside BenchmarkAuthorize's one.
func BenchmarkShadowCounterpart(b *testing.B) {
	c := configtest.Compile(b, withRollout("r1", configv1.RolloutStage_ROLLOUT_STAGE_SHADOW, 0, configtest.Policies+"forbid(principal, action, resource) when { context.arguments has memo && context.arguments.memo == \"x\" };\n"))
	payer, _ := c.AgentByAPIKey(configtest.PayerKey, callAt)
	call := newCall(c, payer, configtest.PayAction, `{"amount": 100, "to": "bob", "memo": "rent"}`)
	ro := c.Rollout()
	for b.Loop() {
		if d, ok := ro.Counterpart(context.Background(), call); !ok || !d.Allowed {
			b.Fatalf("counterpart: %+v, %t", d, ok)
		}
	}
}

// BenchmarkCompileIncremental is the data plane's apply of a one-policy
// change at scale (configtest.Scale: 5,000 agents and policies), reusing
// the version it serves; BenchmarkCompileScale is the same compile from
// scratch.
func BenchmarkCompileIncremental(b *testing.B) {
	s := configtest.Scale(5000)
	prev := configtest.Compile(b, s)
	ps := proto.CloneOf(s.PolicySets[0])
	ps.Source = strings.Replace(ps.GetSource(), configtest.ScaleAgent(1)+`", action`, configtest.ScaleAgent(2)+`", action`, 1)
	s.PolicySets[0] = ps
	s.Version++
	data := configtest.Marshal(b, s)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := config.Compile(data, config.Reusing(prev)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileScale(b *testing.B) {
	data := configtest.Marshal(b, configtest.Scale(5000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := config.Compile(data); err != nil {
			b.Fatal(err)
		}
	}
}
