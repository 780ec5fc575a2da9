package stages_test

import (
	"context"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// contentConfig grants the content of the upstreams in granted.
type contentConfig struct {
	*fakeConfig
	granted []string
}

func (c contentConfig) ContentUpstreams(context.Context, *pipeline.Call) []pipeline.ContentUpstream {
	var out []pipeline.ContentUpstream
	for _, g := range c.granted {
		out = append(out, pipeline.ContentUpstream{Name: g, Prefix: g})
	}
	return out
}

func (c contentConfig) MCPUpstreams() []pipeline.ContentUpstream {
	return []pipeline.ContentUpstream{{Name: "docs", Prefix: "docs"}, {Name: "pay", Prefix: "pay"}}
}

func TestContentGate(t *testing.T) {
	cfg := contentConfig{fakeConfig: newFake(), granted: []string{"docs"}}
	call := func(upstream string, mode configsyncv1.Mode) *pipeline.Call {
		c := fakeCall(cfg, upstream+"__demo://readme")
		c.Method, c.Mode = "resources/read", mode
		c.Tool = pipeline.Tool{Upstream: upstream, Name: "demo://readme"}
		return c
	}
	for _, tc := range []struct {
		name   string
		call   *pipeline.Call
		reason pipeline.Reason // "" for admitted
	}{
		{"granted upstream", call("docs", configsyncv1.Mode_MODE_NORMAL), ""},
		{"granted upstream while degraded (reading is read-only)", call("docs", configsyncv1.Mode_MODE_DEGRADED), ""},
		{"upstream without a tool grant", call("pay", configsyncv1.Mode_MODE_NORMAL), pipeline.ReasonDenied},
		{"stale", call("docs", configsyncv1.Mode_MODE_STALE), pipeline.ReasonStale},
		{"starting", call("docs", configsyncv1.Mode_MODE_STARTING), pipeline.ReasonNoConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			term := &terminal{}
			_, err := stages.ContentGate{}.Handle(context.Background(), tc.call, term.handle)
			if tc.reason == "" {
				if err != nil || !term.reached {
					t.Fatalf("err %v, reached %v: want admitted", err, term.reached)
				}
				return
			}
			wantRefusal(t, err, tc.reason)
			if term.reached {
				t.Error("a refused content call reached the upstream")
			}
		})
	}
	// A configuration that serves no content refuses everything.
	plain := fakeCall(newFake(), "docs__demo://readme")
	plain.Tool = pipeline.Tool{Upstream: "docs"}
	if _, err := (stages.ContentGate{}).Handle(context.Background(), plain, (&terminal{}).handle); err == nil {
		t.Error("content admitted without a content authorizer")
	}
}
