package adminapi_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

// TestToolVersions moves callers between versions of a tool pinned from
// the real demo upstream: version 1 is what the upstream serves, version
// 2 (staged with keep_default) adds a required "units" its live
// definition forbids, version 3 only changes the description.
// Assignments and the default are held to the live definition; diffs say
// why; deprecations validate their input and name a replacement.
func TestToolVersions(t *testing.T) {
	n := startNode(t)
	h := demo.NewHandler(demo.Options{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	if _, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "demo"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: srv.URL + "/mcp",
	}})); err != nil {
		t.Fatal(err)
	}
	if _, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{
		Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "bot"}, Team: "canary"}, NoApiKey: true})); err != nil {
		t.Fatal(err)
	}
	disc, err := n.upstreams.DiscoverUpstream(ctx(t), req(n.admin, &adminv1.DiscoverUpstreamRequest{Name: "demo"}))
	if err != nil {
		t.Fatal(err)
	}
	var live []byte
	for _, d := range disc.Msg.GetTools() {
		if d.GetName() == demo.ToolGetWeather {
			live = d.GetDefinition()
		}
	}
	edit := func(f func(map[string]any)) []byte {
		var def map[string]any
		if err := json.Unmarshal(live, &def); err != nil {
			t.Fatal(err)
		}
		f(def)
		b, _ := json.Marshal(def)
		return b
	}
	v2 := edit(func(d map[string]any) {
		in := d["inputSchema"].(map[string]any)
		in["properties"].(map[string]any)["units"] = map[string]any{"type": "string"}
		in["required"] = []any{"city", "units"}
	})
	v3 := edit(func(d map[string]any) { d["description"] = "Weather, now with more words." })
	pin := func(def []byte, keep bool) *adminv1.PinToolResponse {
		t.Helper()
		res, err := n.tools.PinTool(ctx(t), req(n.admin, &adminv1.PinToolRequest{Upstream: "demo", Tool: demo.ToolGetWeather, Definition: def,
			Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY, KeepDefault: keep}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg
	}
	pin(live, false)
	if p := pin(v2, true).GetPin(); toolversion.Default(p).GetVersion() != 1 || len(p.GetVersions()) != 2 {
		t.Fatalf("keep_default: default %d of %d versions, want 1 of 2", toolversion.Default(p).GetVersion(), len(p.GetVersions()))
	}
	pin(v3, true)

	assign := func(version int64, team, agent string) (*adminv1.AssignToolVersionResponse, error) {
		res, err := n.tools.AssignToolVersion(ctx(t), req(n.admin, &adminv1.AssignToolVersionRequest{
			Upstream: "demo", Tool: demo.ToolGetWeather, Version: version, Team: team, Agent: agent}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	t.Run("assign", func(t *testing.T) {
		_, err := assign(2, "canary", "")
		wantCode(t, err, connect.CodeFailedPrecondition, "version 2", "incompatible", "units")
		_, err = assign(3, "canary", "bot")
		wantCode(t, err, connect.CodeInvalidArgument, "exactly one of team and agent")
		_, err = assign(3, "", "nobody")
		wantCode(t, err, connect.CodeNotFound, `agent "nobody" does not exist`)
		_, err = assign(9, "canary", "")
		wantCode(t, err, connect.CodeNotFound, "no version 9")
		res, err := assign(3, "canary", "")
		if err != nil {
			t.Fatal(err)
		}
		if res.GetCompatibility().GetVerdict() != adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_COMPATIBLE || len(res.GetPin().GetAssignments()) != 1 {
			t.Fatalf("assign 3 to canary: %v", res)
		}
		if v, src := toolversion.For(res.GetPin(), "bot", "canary"); v.GetVersion() != 3 || src != toolversion.SourceTeam {
			t.Errorf("bot is served version %d (%v), want 3 by its team", v.GetVersion(), src)
		}
		res, err = assign(0, "canary", "")
		if err != nil || len(res.GetPin().GetAssignments()) != 0 {
			t.Fatalf("assign 0 (remove): %v %v", res, err)
		}
	})
	t.Run("set default", func(t *testing.T) {
		_, err := n.tools.SetDefaultToolVersion(ctx(t), req(n.admin, &adminv1.SetDefaultToolVersionRequest{Upstream: "demo", Tool: demo.ToolGetWeather, Version: 2}))
		wantCode(t, err, connect.CodeFailedPrecondition, "incompatible")
		res, err := n.tools.SetDefaultToolVersion(ctx(t), req(n.admin, &adminv1.SetDefaultToolVersionRequest{Upstream: "demo", Tool: demo.ToolGetWeather, Version: 3}))
		if err != nil || toolversion.Default(res.Msg.GetPin()).GetVersion() != 3 {
			t.Fatalf("set-default 3: %v %v", res, err)
		}
	})
	t.Run("diff", func(t *testing.T) {
		for _, tt := range []struct {
			from, to int64
			want     adminv1.CompatibilityVerdict
			text     string
		}{
			{from: 1, to: 2, want: adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_INCOMPATIBLE, text: "units"},
			{from: 1, to: 3, want: adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_COMPATIBLE, text: "description changed"},
			{from: 2, to: 0, want: adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_INCOMPATIBLE, text: "units"},
			{from: 1, to: 0, want: adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_COMPATIBLE},
		} {
			res, err := n.tools.DiffToolVersions(ctx(t), req(n.admin, &adminv1.DiffToolVersionsRequest{Upstream: "demo", Tool: demo.ToolGetWeather, FromVersion: tt.from, ToVersion: tt.to}))
			if err != nil {
				t.Fatal(err)
			}
			c := res.Msg.GetCompatibility()
			var texts []string
			for _, d := range c.GetDifferences() {
				texts = append(texts, d.GetText())
			}
			if c.GetVerdict() != tt.want || !strings.Contains(strings.Join(texts, "; "), tt.text) {
				t.Errorf("diff %d→%d: %v %q, want %v with %q", tt.from, tt.to, c.GetVerdict(), texts, tt.want, tt.text)
			}
		}
	})
	t.Run("deprecate", func(t *testing.T) {
		future := timestamppb.New(time.Now().Add(time.Hour))
		for _, tt := range []struct {
			name string
			req  *adminv1.DeprecateToolVersionRequest
			code connect.Code
			text string
		}{
			{name: "no sunset", req: &adminv1.DeprecateToolVersionRequest{Version: 1}, code: connect.CodeInvalidArgument, text: "sunset_time is required"},
			{name: "sunset in the past", req: &adminv1.DeprecateToolVersionRequest{Version: 1, SunsetTime: timestamppb.New(time.Now().Add(-time.Hour))},
				code: connect.CodeInvalidArgument, text: "not in the future"},
			{name: "message too long", req: &adminv1.DeprecateToolVersionRequest{Version: 1, SunsetTime: future, Message: strings.Repeat("x", 5000)},
				code: connect.CodeInvalidArgument, text: "at most"},
			{name: "cancel with a sunset", req: &adminv1.DeprecateToolVersionRequest{Version: 1, SunsetTime: future, Cancel: true},
				code: connect.CodeInvalidArgument, text: "cancel takes no"},
			{name: "unknown version", req: &adminv1.DeprecateToolVersionRequest{Version: 9, SunsetTime: future}, code: connect.CodeNotFound, text: "no version 9"},
		} {
			tt.req.Upstream, tt.req.Tool = "demo", demo.ToolGetWeather
			_, err := n.tools.DeprecateToolVersion(ctx(t), req(n.admin, tt.req))
			wantCode(t, err, tt.code, tt.text)
		}
		res, err := n.tools.DeprecateToolVersion(ctx(t), req(n.admin, &adminv1.DeprecateToolVersionRequest{
			Upstream: "demo", Tool: demo.ToolGetWeather, Version: 1, SunsetTime: future, Message: "move on"}))
		if err != nil {
			t.Fatal(err)
		}
		v := toolversion.Find(res.Msg.GetPin(), 1)
		if res.Msg.GetReplacement() != 3 || !toolversion.Deprecated(v) || v.GetDeprecationMessage() != "move on" || !v.GetSunsetTime().AsTime().Equal(future.AsTime()) {
			t.Fatalf("deprecate 1: replacement %d, version %v", res.Msg.GetReplacement(), v)
		}
		res, err = n.tools.DeprecateToolVersion(ctx(t), req(n.admin, &adminv1.DeprecateToolVersionRequest{
			Upstream: "demo", Tool: demo.ToolGetWeather, Version: 1, Cancel: true}))
		if err != nil || toolversion.Deprecated(toolversion.Find(res.Msg.GetPin(), 1)) {
			t.Fatalf("cancel: %v %v", res, err)
		}
	})
}
