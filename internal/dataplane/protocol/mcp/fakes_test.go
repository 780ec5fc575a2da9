package mcp_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/setting"
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
	// origins is the mcp.allowed-origins setting.
	origins []string
	rules   *inspect.Ruleset
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

func (c *fakeConfig) AgentByJWT(context.Context, string, time.Time) (*configv1.Agent, error) {
	return nil, errors.New("no agent tokens here")
}

func (c *fakeConfig) UserByJWT(context.Context, string, time.Time) (*pipeline.User, error) {
	return nil, errors.New("no user tokens here")
}

func (c *fakeConfig) AgentByCert([]*x509.Certificate, time.Time) (*configv1.Agent, error) {
	return nil, errors.New("the client certificate is not trusted")
}

func (c *fakeConfig) Agent(string) (pipeline.Tool, bool) { return pipeline.Tool{}, false }

func (c *fakeConfig) Tool(action string, _ *configv1.Agent) (pipeline.Tool, bool) {
	i := slices.IndexFunc(c.tools, func(t pipeline.Tool) bool { return t.Action == action })
	if i < 0 {
		return pipeline.Tool{}, false
	}
	t := c.tools[i]
	if t.ValidateArguments == nil {
		t.ValidateArguments = func(any) error { return nil }
	}
	return t, true
}

func (c *fakeConfig) Upstreams(string) []pipeline.Upstream {
	seen := map[string]bool{}
	var out []pipeline.Upstream
	for _, t := range c.tools {
		if !seen[t.Upstream] {
			seen[t.Upstream] = true
			prefix, _, _ := strings.Cut(t.Action, "__")
			out = append(out, pipeline.Upstream{Name: t.Upstream, Prefix: prefix})
		}
	}
	return out
}

func (c *fakeConfig) Authorize(context.Context, *pipeline.Call) pipeline.Decision {
	return pipeline.Decision{Allowed: true}
}

// Listable lists every tool, and every upstream's content.
func (c *fakeConfig) Listable(_ context.Context, call *pipeline.Call, kind pipeline.Kind) []pipeline.Target {
	if call.Agent == nil {
		return nil
	}
	return targets(c.tools, c.Upstreams("mcp"), kind)
}

// targets are the listable targets of kind among tools and upstreams.
func targets(tools []pipeline.Tool, ups []pipeline.Upstream, kind pipeline.Kind) []pipeline.Target {
	var out []pipeline.Target
	switch kind {
	case pipeline.KindTool:
		for _, t := range tools {
			out = append(out, pipeline.Target{Kind: kind, Name: t.Action, Upstream: t.Upstream, Own: t.Name, Tool: t})
		}
	case pipeline.KindResource, pipeline.KindPrompt:
		for _, u := range ups {
			out = append(out, pipeline.Target{Kind: kind, Upstream: u.Name})
		}
	}
	return out
}

// Model implements pipeline.Config: no model is served.
func (c *fakeConfig) Model(string) (pipeline.Model, bool) { return pipeline.Model{}, false }

func (c *fakeConfig) Frozen() (bool, string) { return c.frozen, "incident" }

func (c *fakeConfig) Setting(name string) []string {
	if name == setting.MCPAllowedOrigins {
		return c.origins
	}
	return nil
}

func (c *fakeConfig) Inspection() *inspect.Ruleset { return c.rules }

// fakeBackend runs calls through the real pipeline stages (audited to
// nowhere) into a terminal: terminal for tool calls, content for the
// other upstream operations, an empty result for lists and session
// requests. It records every tool call that reached it.
type fakeBackend struct {
	cfg      pipeline.Config // nil: no configuration yet
	mode     configsyncv1.Mode
	terminal func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error)
	// content answers reads, gets and content lists (nil: refused).
	content func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error)

	mu    sync.Mutex
	calls []pipeline.Call
	// audited are the audit records the pipeline wrote.
	audited []*auditv1.Record
}

func (b *fakeBackend) Begin(r *http.Request) *pipeline.Call {
	return &pipeline.Call{Config: b.cfg, Mode: b.mode, UserToken: r.Header.Get("Portcullis-User-Token")}
}

func (b *fakeBackend) Run(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	if c.Op == pipeline.OpCall {
		b.mu.Lock()
		b.calls = append(b.calls, *c)
		b.mu.Unlock()
	}
	chain := pipeline.Chain(b.forward, stages.Default(stages.Options{Audit: stages.Audit{Writer: auditTo{b}}})...)
	return chain(ctx, c)
}

func (b *fakeBackend) forward(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	switch {
	case c.Op == pipeline.OpCall:
		return b.terminal(ctx, c)
	case c.Op == pipeline.OpSession || c.Op == pipeline.OpList && c.Target.Kind == pipeline.KindTool:
		return &pipeline.Result{Items: len(c.Visible)}, nil
	case b.content != nil:
		return b.content(ctx, c)
	}
	return nil, pipeline.Refuse(pipeline.ReasonUpstreamUnavailable, "no content here")
}

// auditTo keeps the pipeline's audit records in the backend.
type auditTo struct{ b *fakeBackend }

func (a auditTo) Write(_ context.Context, r *auditv1.Record) error {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.b.audited = append(a.b.audited, r)
	return nil
}

func (b *fakeBackend) records() []*auditv1.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.audited)
}

func (b *fakeBackend) recorded() []pipeline.Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}
