package mcp_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// resolvingConfig is a call's configuration that also resolves upstreams,
// as the data plane's compiled snapshot does.
type resolvingConfig struct {
	*fakeConfig
	*upstreamtest.Resolver
}

// TestNewRegistersMCP: what MCP gives the data plane — its endpoints, a
// forwarder that calls its upstreams, and hooks that end the sessions of
// upstreams a new configuration removed and stop cleanly.
func TestNewRegistersMCP(t *testing.T) {
	up := startUpstream(t, demo.Options{})
	p := mcpgw.New(protocol.Deps{
		Logger:  testLogger(t),
		Backend: &fakeBackend{cfg: newFakeConfig(), mode: configsyncv1.Mode_MODE_NORMAL},
		HopID:   "dp-self",
	})
	var patterns []string
	for _, e := range p.Endpoints {
		patterns = append(patterns, e.Pattern)
	}
	if p.Name != "mcp" || !slices.Contains(patterns, "/mcp") || !slices.Contains(patterns, mcpgw.MetadataPath) || p.Tools == nil {
		t.Fatalf("registered %q at %v (lists tools: %v)", p.Name, patterns, p.Tools != nil)
	}
	if !slices.Contains(p.Upstreams, configv1.Protocol_PROTOCOL_MCP) || !slices.Contains(p.Upstreams, configv1.Protocol_PROTOCOL_UNSPECIFIED) {
		t.Errorf("serves upstreams %v, want MCP and unspecified", p.Upstreams)
	}

	r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))
	cfg := resolvingConfig{newFakeConfig(), r}
	res, err := p.Forward(t.Context(), &pipeline.Call{
		Protocol: "mcp", Op: pipeline.OpCall, Config: cfg, Arguments: json.RawMessage(`{"city":"Oslo"}`),
		Target: pipeline.Target{Kind: pipeline.KindTool, Upstream: "demo", Own: demo.ToolGetWeather,
			Tool: pipeline.Tool{Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY}},
	})
	if err != nil || res.IsError || !strings.Contains(string(res.Body), "Oslo") {
		t.Fatalf("forward: %v %v", res, err)
	}
	if calls := up.h.Calls(); len(calls) != 1 || !strings.Contains(calls[0].Header.Get("Portcullis-Hop"), "dp-self") {
		t.Fatalf("the upstream saw %d calls, want 1 naming this data plane in its hop header", len(calls))
	}

	r.DeleteUpstream("demo")
	p.Configured(r)
	harness.Await(t, 10*time.Second, "session of a removed upstream ended", func() error {
		if n := up.h.OpenSessions(); n != 0 {
			return fmt.Errorf("the upstream holds %d sessions", n)
		}
		return nil
	})
	p.Stop()
	p.Stop() // idempotent
	p.Configured(r)
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}
