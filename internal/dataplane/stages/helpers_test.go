package stages_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// fakeConfig is a pipeline.Config whose answers the test sets.
type fakeConfig struct {
	keys     map[string]*configv1.Agent
	tools    map[string]pipeline.Tool
	decision pipeline.Decision
	frozen   bool
	reason   string
	rules    *inspect.Ruleset
	// decided records the findings Authorize saw.
	decided []string
}

var _ pipeline.Config = (*fakeConfig)(nil)

func (f *fakeConfig) Version() uint64 { return 7 }

func (f *fakeConfig) AgentByAPIKey(key string, _ time.Time) (*configv1.Agent, bool) {
	a, ok := f.keys[key]
	return a, ok
}

func (f *fakeConfig) AgentByJWT(context.Context, string, time.Time) (*configv1.Agent, error) {
	return nil, errors.New("no identity source is trusted for JWTs")
}

func (f *fakeConfig) UserByJWT(context.Context, string, time.Time) (*pipeline.User, error) {
	return nil, errors.New("no identity source is trusted for JWTs")
}

func (f *fakeConfig) AgentByCert([]*x509.Certificate, time.Time) (*configv1.Agent, error) {
	return nil, errors.New("the client certificate is not trusted")
}

func (f *fakeConfig) Agent(string) (pipeline.Tool, bool) { return pipeline.Tool{}, false }

func (f *fakeConfig) Tool(action string, _ *configv1.Agent) (pipeline.Tool, bool) {
	t, ok := f.tools[action]
	return t, ok
}

func (f *fakeConfig) Upstreams(string) []pipeline.Upstream {
	return []pipeline.Upstream{{Name: "up", Prefix: "up"}}
}

func (f *fakeConfig) Authorize(_ context.Context, c *pipeline.Call) pipeline.Decision {
	f.decided = c.PolicyFindings
	return f.decision
}

func (f *fakeConfig) Listable(_ context.Context, _ *pipeline.Call, kind pipeline.Kind) []pipeline.Target {
	if kind != pipeline.KindTool {
		return nil
	}
	return []pipeline.Target{toolTarget(readTool), toolTarget(writeTool)}
}

// Model implements pipeline.Config: no model is served.
func (f *fakeConfig) Model(string) (pipeline.Model, bool) { return pipeline.Model{}, false }

func (f *fakeConfig) Frozen() (bool, string) { return f.frozen, f.reason }

func (f *fakeConfig) Setting(string) []string      { return nil }
func (f *fakeConfig) Inspection() *inspect.Ruleset { return f.rules }

const goodKey = "pck_0123456789abcdef_good"

var (
	alice    = &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "alice"}}
	errBad   = errors.New("bad arguments at arguments/x")
	readTool = pipeline.Tool{Action: "up__read", Upstream: "up", Name: "read", Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY,
		ValidateArguments: func(any) error { return nil }}
	writeTool = pipeline.Tool{Action: "up__write", Upstream: "up", Name: "write", Class: configv1.ToolClass_TOOL_CLASS_MUTATING,
		ValidateArguments: func(any) error { return nil }}
)

func newFake() *fakeConfig {
	return &fakeConfig{
		keys:  map[string]*configv1.Agent{goodKey: alice},
		tools: map[string]pipeline.Tool{readTool.Action: readTool, writeTool.Action: writeTool},
	}
}

// toolTarget is the target of a call of t, as Gate resolves it.
func toolTarget(t pipeline.Tool) pipeline.Target {
	return pipeline.Target{Kind: pipeline.KindTool, Name: t.Action, Upstream: t.Upstream, Own: t.Name, Tool: t}
}

// fakeCall is a call in normal mode against cfg.
func fakeCall(cfg pipeline.Config, action string) *pipeline.Call {
	c := &pipeline.Call{
		Protocol: "mcp", Method: "tools/call", Op: pipeline.OpCall, Target: pipeline.Target{Kind: pipeline.KindTool, Name: action},
		Arguments:  json.RawMessage(`{}`),
		Credential: goodKey, SourceIP: netip.MustParseAddr("192.0.2.7"),
		Start: time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC), Mode: configsyncv1.Mode_MODE_NORMAL,
	}
	if cfg != nil {
		c.Config = cfg
	}
	return c
}

// terminal is a handler that records whether it was reached.
type terminal struct {
	reached bool
	result  *pipeline.Result
	err     error
}

func (t *terminal) handle(context.Context, *pipeline.Call) (*pipeline.Result, error) {
	t.reached = true
	if t.result == nil && t.err == nil {
		return &pipeline.Result{Body: json.RawMessage(`{"ok":true}`), UpstreamLatency: 3 * time.Millisecond}, nil
	}
	return t.result, t.err
}

// recorder is an audit writer that keeps records in memory.
type recorder struct {
	mu      sync.Mutex
	records []*auditv1.Record
	err     error
	ctxErr  error // the context error seen by the last write
}

func (r *recorder) Write(ctx context.Context, rec *auditv1.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctxErr = ctx.Err()
	if r.err != nil {
		return r.err
	}
	r.records = append(r.records, rec)
	return nil
}

func (r *recorder) all() []*auditv1.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*auditv1.Record(nil), r.records...)
}

// wantRefusal checks err is a refusal with the given reason ("" wants no
// error) and returns its message.
func wantRefusal(t *testing.T, err error, reason pipeline.Reason) string {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("error = %v, want none", err)
		}
		return ""
	}
	var r *pipeline.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("error = %v, want a refusal %q", err, reason)
	}
	if r.Reason != reason {
		t.Fatalf("refusal = %v, want reason %q", r, reason)
	}
	return r.Message
}
