package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// listingConfig is a fakeConfig that filters tools/list per caller: each
// agent may list the actions in allowed, and a call on behalf of user
// "finance-user" may list payTool as well. It trusts one user token.
type listingConfig struct {
	*fakeConfig
	allowed map[string][]string // agent name → actions

	mu    sync.Mutex
	calls []pipeline.Call
}

const goodUserToken = "user-token-finance"

var _ pipeline.Config = (*listingConfig)(nil)

func (c *listingConfig) Listable(_ context.Context, call *pipeline.Call, kind pipeline.Kind) []pipeline.Target {
	c.mu.Lock()
	c.calls = append(c.calls, *call)
	c.mu.Unlock()
	if call.Agent == nil || kind != pipeline.KindTool {
		return nil
	}
	var out []pipeline.Tool
	for _, t := range c.tools {
		ok := slices.Contains(c.allowed[call.Agent.GetMeta().GetName()], t.Action)
		if call.User != nil && call.User.Name == "finance-user" && t.Action == payTool.Action {
			ok = true
		}
		if ok {
			out = append(out, t)
		}
	}
	return targets(out, nil, kind)
}

func (c *listingConfig) AgentByJWT(context.Context, string, time.Time) (*configv1.Agent, error) {
	return nil, errors.New("no agent tokens here")
}

func (c *listingConfig) UserByJWT(_ context.Context, token string, _ time.Time) (*pipeline.User, error) {
	if token != goodUserToken {
		return nil, errors.New("signature invalid")
	}
	return &pipeline.User{Source: "people", Name: "finance-user", Groups: []string{"finance"}}, nil
}

func newListingEnv(t *testing.T) (*env, *listingConfig) {
	t.Helper()
	e := newEnv(t)
	lc := &listingConfig{fakeConfig: e.cfg, allowed: map[string][]string{
		"alice": {bareTool.Action, payTool.Action, weatherTool.Action},
		"bob":   {weatherTool.Action},
	}}
	e.b.cfg = lc
	return e, lc
}

func listedActions(t *testing.T, e *env, token string, header map[string]string) []string {
	t.Helper()
	rec := e.do(t, req{token: token, header: header, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	r := decode(t, rec)
	if rec.Code != 200 || r.Error != nil {
		t.Fatalf("tools/list: %d %s", rec.Code, rec.Body)
	}
	var res struct {
		Tools []listedTool `json:"tools"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil || res.Tools == nil {
		t.Fatalf("tools/list result %s: want a tools array (%v)", r.Result, err)
	}
	got := []string{}
	for _, tool := range res.Tools {
		got = append(got, tool.Name)
	}
	return got
}

func TestToolsListPerAgent(t *testing.T) {
	e, lc := newListingEnv(t)
	alice := listedActions(t, e, aliceKey, nil)
	bob := listedActions(t, e, bobKey, nil)
	if want := []string{"demo__bare", "demo__pay", "demo__weather"}; !slices.Equal(alice, want) {
		t.Errorf("alice lists %q, want %q", alice, want)
	}
	if want := []string{"demo__weather"}; !slices.Equal(bob, want) {
		t.Errorf("bob lists %q, want %q", bob, want)
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.calls) != 2 {
		t.Fatalf("Listable called %d times, want 2", len(lc.calls))
	}
	for i, name := range []string{"alice", "bob"} {
		c := lc.calls[i]
		if c.Agent.GetMeta().GetName() != name || c.Protocol != "mcp" || c.Method != "tools/list" || c.User != nil || c.Start.IsZero() {
			t.Errorf("Listable call %d = %+v, want agent %s over mcp tools/list without a user", i, c, name)
		}
	}
}

func TestToolsListFilteredStillHonoursMode(t *testing.T) {
	e, _ := newListingEnv(t)
	e.b.mode = configsyncv1.Mode_MODE_DEGRADED
	if got, want := listedActions(t, e, aliceKey, nil), []string{"demo__bare", "demo__weather"}; !slices.Equal(got, want) {
		t.Errorf("degraded: alice lists %q, want %q", got, want)
	}
	e.b.mode = configsyncv1.Mode_MODE_STALE
	if got := listedActions(t, e, aliceKey, nil); len(got) != 0 {
		t.Errorf("stale: alice lists %q, want none", got)
	}
}

func TestToolsListOnBehalfOfUser(t *testing.T) {
	e, lc := newListingEnv(t)
	got := listedActions(t, e, bobKey, map[string]string{"Portcullis-User-Token": goodUserToken})
	if want := []string{"demo__pay", "demo__weather"}; !slices.Equal(got, want) {
		t.Errorf("bob for the finance user lists %q, want %q", got, want)
	}
	lc.mu.Lock()
	if n := len(lc.calls); n != 1 || lc.calls[0].User == nil || lc.calls[0].User.Name != "finance-user" {
		t.Errorf("Listable calls = %+v, want one with the verified user", lc.calls)
	}
	lc.mu.Unlock()

	rec := e.do(t, req{token: bobKey, header: map[string]string{"Portcullis-User-Token": "forged"},
		body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	if rec.Code != 401 {
		t.Fatalf("forged user token: %d %s, want 401", rec.Code, rec.Body)
	}
	if r := decode(t, rec); r.Error == nil || r.Error.Message != "the user token (Portcullis-User-Token) was refused: signature invalid" {
		t.Errorf("forged user token: %s", rec.Body)
	}
}

func TestToolsListRefusesAnUnverifiableUserToken(t *testing.T) {
	// Every configuration verifies user tokens: one it cannot verify is
	// refused, never ignored.
	e := newEnv(t)
	rec := e.do(t, req{token: bobKey, header: map[string]string{"Portcullis-User-Token": "anything"},
		body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	if rec.Code != 401 {
		t.Fatalf("unverifiable user token: %d %s, want 401", rec.Code, rec.Body)
	}
}
