package mcpgw_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Keys of the fake configuration's agents.
const (
	aliceKey    = "pck_aaaaaaaaaaaaaaaa_alice-SECRET-must-not-echo"
	bobKey      = "pck_bbbbbbbbbbbbbbbb_bob-SECRET-must-not-echo"
	disabledKey = "pck_dddddddddddddddd_disabled-SECRET"
)

// fakeConfig is a pipeline.Config with fixed agents and tools.
type fakeConfig struct {
	agents map[string]*configv1.Agent // by API key
	tools  []pipeline.Tool
	frozen bool
}

var _ pipeline.Config = (*fakeConfig)(nil)

func newFakeConfig(tools ...pipeline.Tool) *fakeConfig {
	agent := func(name string, disabled bool) *configv1.Agent {
		return &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}, Disabled: disabled}
	}
	return &fakeConfig{
		agents: map[string]*configv1.Agent{
			aliceKey: agent("alice", false), bobKey: agent("bob", false), disabledKey: agent("old", true),
		},
		tools: tools,
	}
}

func (c *fakeConfig) Version() uint64 { return 7 }

func (c *fakeConfig) AgentByAPIKey(key string, _ time.Time) (*configv1.Agent, bool) {
	a, ok := c.agents[key]
	return a, ok
}

func (c *fakeConfig) Tool(action string) (pipeline.Tool, bool) {
	i := slices.IndexFunc(c.tools, func(t pipeline.Tool) bool { return t.Action == action })
	if i < 0 {
		return pipeline.Tool{}, false
	}
	return c.tools[i], true
}

func (c *fakeConfig) Tools() []pipeline.Tool { return slices.Clone(c.tools) }

func (c *fakeConfig) Authorize(context.Context, *pipeline.Call) pipeline.Decision {
	return pipeline.Decision{Allowed: true}
}

func (c *fakeConfig) Frozen() (bool, string) { return c.frozen, "incident" }

// fakeBackend authenticates and resolves the tool as the real pipeline
// does, then hands the call to terminal. It records every call.
type fakeBackend struct {
	cfg      pipeline.Config // nil: no configuration yet
	mode     configsyncv1.Mode
	terminal func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error)

	mu    sync.Mutex
	calls []pipeline.Call
}

func (b *fakeBackend) Begin(r *http.Request) *pipeline.Call {
	return &pipeline.Call{Config: b.cfg, Mode: b.mode, UserToken: r.Header.Get("Portcullis-User-Token")}
}

func (b *fakeBackend) Handle(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	b.mu.Lock()
	b.calls = append(b.calls, *c)
	b.mu.Unlock()
	if c.Config == nil {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, "the data plane has no configuration yet; retry shortly")
	}
	agent, ok := c.Config.AgentByAPIKey(c.Credential, c.Start)
	if !ok || agent.GetDisabled() {
		return nil, pipeline.Refuse(pipeline.ReasonUnauthenticated, "a valid API key is required")
	}
	c.Agent = agent
	tool, ok := c.Config.Tool(c.Action)
	if !ok {
		return nil, pipeline.Refuse(pipeline.ReasonUnknownTool, "no tool %q is served by this gateway", c.Action)
	}
	c.Tool = tool
	if tool.ValidateArguments != nil {
		var args any
		if err := json.Unmarshal(c.Arguments, &args); err != nil {
			return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "arguments are not JSON")
		}
		if err := tool.ValidateArguments(args); err != nil {
			return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "invalid arguments for %s: %v", c.Action, err)
		}
	}
	return b.terminal(ctx, c)
}

func (b *fakeBackend) recorded() []pipeline.Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}
