package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Input schemas of get_weather as the demo upstream is changed to serve
// them: v2 adds an optional "units" (compatible: every input v1 accepts,
// v2 accepts), v3 requires it (incompatible with v1 and v2).
const (
	weatherV2Schema = `{"additionalProperties":false,"properties":{"city":{"description":"city to report on","type":"string"},"units":{"enum":["metric","imperial"],"type":"string"}},"required":["city"],"type":"object"}`
	weatherV3Schema = `{"additionalProperties":false,"properties":{"city":{"description":"city to report on","type":"string"},"units":{"enum":["metric","imperial"],"type":"string"}},"required":["city","units"],"type":"object"}`
)

// TestToolVersionUpgrade stages a tool upgrade across a fleet with real
// processes: the upstream changes get_weather compatibly; the new
// definition is approved as version 2 without becoming the default and
// assigned to a canary team, which sees and is validated against it while
// team ops stays on version 1; version 1 is deprecated with a sunset
// seconds away: its calls carry the notice (result _meta, Deprecation and
// Sunset headers, audit), "tool callers" names the agent still on it, and
// after the sunset its calls are refused with the version to move to;
// set-default moves everyone. Then the upstream changes incompatibly: the
// diff says why and exits non-zero, callers of the version in use are
// refused as incompatible, and that version cannot be assigned.
func TestToolVersionUpgrade(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	canaryKey := g.createAgent(t, "canary-agent", "canary")
	awaitVersion(t, dp, g.applyPolicy(t, "canary", `permit(principal in Team::"canary", action in Action::"call_tool", resource);`+"\n"), 20*time.Second)
	tool := []string{"--upstream", "demo", "--tool", "get_weather"}
	withUnits := map[string]any{"city": "Oslo", "units": "metric"}

	// The upstream changes the tool compatibly: quarantined until approved.
	changeTool(t, g.up, "get_weather", `{"inputSchema":`+weatherV2Schema+`}`)
	awaitRefusal(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "quarantined")

	// Approve it as version 2, staged: the default stays version 1.
	r := g.gwctl(t, append([]string{"tool", "approve", "--keep-default"}, tool...)...)
	if !strings.Contains(r.Stdout, "approved demo/get_weather version 2") || !strings.Contains(r.Stdout, "the default stays version 1") {
		t.Fatalf("approve --keep-default printed %q", r.Stdout)
	}
	var assigned struct {
		Pin           revisioned `json:"pin"`
		Compatibility struct {
			Verdict string `json:"verdict"`
		} `json:"compatibility"`
	}
	harness.GwctlJSON(t, g.env(), &assigned, append([]string{"tool", "assign", "--version", "2", "--team", "canary", "--timeout", "20s", "-o", "json"}, tool...)...)
	if assigned.Compatibility.Verdict != "COMPATIBILITY_VERDICT_COMPATIBLE" {
		t.Errorf("assign: compatibility %q, want compatible", assigned.Compatibility.Verdict)
	}
	awaitVersion(t, dp, uint64(assigned.Pin.Meta.Revision), 20*time.Second)

	// The canary team sees and is validated against version 2; ops stays
	// on version 1 (no "units", which its schema forbids).
	if s := listedSchema(t, dp, canaryKey, actionWeather); !strings.Contains(s, `"units"`) {
		t.Errorf("canary's tools/list input schema %s lacks units (version 2)", s)
	}
	if s := listedSchema(t, dp, g.opsKey, actionWeather); strings.Contains(s, `"units"`) {
		t.Errorf("ops's tools/list input schema %s has units; ops is on version 1", s)
	}
	mustCall(t, dp, canaryKey, actionWeather, withUnits)
	mustRefuse(t, dp, g.opsKey, actionWeather, withUnits, "invalid_arguments")
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	awaitAudit(t, dp, func(r harness.AuditRecord) bool {
		return r.Agent == "canary-agent" && r.Tool == actionWeather && r.Outcome == "ok" && r.ToolVersion == 2
	})
	awaitAudit(t, dp, func(r harness.AuditRecord) bool {
		return r.Agent == "ops-agent" && r.Tool == actionWeather && r.Outcome == "ok" && r.ToolVersion == 1 && !r.ToolDeprecated
	})

	// Deprecate version 1 with a sunset a few seconds away.
	sunset := time.Now().Add(8 * time.Second).UTC().Truncate(time.Second)
	r = g.gwctl(t, append([]string{"tool", "deprecate", "--version", "1", "--sunset", sunset.Format(time.RFC3339), "--message", "units arrive in v2"}, tool...)...)
	if !strings.Contains(r.Stdout, "move to version 2") {
		t.Errorf("deprecate printed %q, want the replacement", r.Stdout)
	}
	var pin revisioned
	harness.GwctlJSON(t, g.env(), &pin, append([]string{"tool", "versions", "-o", "json", "--timeout", "20s"}, tool...)...)
	awaitVersion(t, dp, uint64(pin.Meta.Revision), 20*time.Second)

	// Before the sunset: served, with the notice, and flagged in audit.
	c := mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	if !time.Now().Before(sunset) {
		t.Fatal("the sunset passed before the deprecated call was checked; the machine is too slow for this test's margin")
	}
	var res struct {
		Meta map[string]struct {
			Version     int64  `json:"version"`
			Sunset      string `json:"sunset"`
			Message     string `json:"message"`
			Replacement int64  `json:"replacement"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(c.Result, &res); err != nil {
		t.Fatal(err)
	}
	if n := res.Meta["io.portcullis/deprecation"]; n.Version != 1 || n.Sunset != sunset.Format(time.RFC3339) || n.Replacement != 2 || n.Message != "units arrive in v2" {
		t.Errorf("deprecation notice %+v in result %s", n, c.Result)
	}
	if got, want := c.Header.Get("Sunset"), sunset.Format(http.TimeFormat); got != want {
		t.Errorf("Sunset header %q, want %q", got, want)
	}
	if d := c.Header.Get("Deprecation"); !strings.HasPrefix(d, "@") {
		t.Errorf("Deprecation header %q, want @<unix seconds> (RFC 9745)", d)
	}
	// The canary's version is not deprecated: no notice.
	if c := mustCall(t, dp, canaryKey, actionWeather, withUnits); strings.Contains(string(c.Result), "io.portcullis/deprecation") || c.Header.Get("Sunset") != "" {
		t.Errorf("a call on version 2 carries a deprecation notice: %s", c.Result)
	}
	awaitAudit(t, dp, func(r harness.AuditRecord) bool {
		return r.Agent == "ops-agent" && r.Tool == actionWeather && r.Outcome == "ok" && r.ToolVersion == 1 && r.ToolDeprecated
	})

	// The operator learns who is still on version 1.
	awaitGwctl(t, g, "tool callers names ops-agent on version 1", func(out string) bool {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "1" && f[1] == "ops-agent" {
				return !strings.Contains(out, "canary-agent")
			}
		}
		return false
	}, append([]string{"tool", "callers", "--version", "1", "--since", "1h"}, tool...)...)
	// In JSON: each agent on its version (the data plane uploads its
	// records in batches, so the canary's may come later).
	deadline := time.Now().Add(20 * time.Second)
	for {
		var callers struct {
			Callers []struct {
				Version harness.Int64 `json:"version"`
				Agent   string        `json:"agent"`
				Calls   harness.Int64 `json:"calls"`
			} `json:"callers"`
		}
		harness.GwctlJSON(t, g.env(), &callers, append([]string{"tool", "callers", "--since", "1h", "-o", "json", "--timeout", "20s"}, tool...)...)
		byVersion := map[string]int64{}
		for _, x := range callers.Callers {
			byVersion[fmt.Sprintf("%s@%d", x.Agent, x.Version)] += int64(x.Calls)
		}
		if byVersion["ops-agent@1"] >= 2 && byVersion["canary-agent@2"] >= 2 && len(byVersion) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tool callers -o json: %v, want ops-agent on version 1 and canary-agent on version 2, twice each", byVersion)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if y := g.gwctl(t, append([]string{"tool", "versions", "-o", "yaml"}, tool...)...).Stdout; !strings.Contains(y, "team: canary") || !strings.Contains(y, "sunsetTime:") {
		t.Errorf("tool versions -o yaml lacks the assignment or the sunset:\n%s", y)
	}

	// After the sunset, by the data plane's clock: refused, naming the
	// replacement; ops's tools/list drops the tool, the canary's keeps it.
	ref := awaitRefusal(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "tool_version_retired")
	for _, want := range []string{"version 1 of tool demo__get_weather was retired", "units arrive in v2", "version 2 replaces it"} {
		if !strings.Contains(ref.Text, want) {
			t.Errorf("retired refusal %q lacks %q", ref.Text, want)
		}
	}
	if listed(t, dp, g.opsKey, actionWeather) || !listed(t, dp, canaryKey, actionWeather) {
		t.Error("after the sunset, want get_weather hidden from ops (version 1) and listed for canary (version 2)")
	}
	mustCall(t, dp, canaryKey, actionWeather, withUnits)
	awaitAudit(t, dp, func(r harness.AuditRecord) bool {
		return r.Agent == "ops-agent" && r.Reason == "tool_version_retired" && r.Outcome == "refused" && r.ToolVersion == 1
	})
	r = g.gwctl(t, append([]string{"tool", "versions"}, tool...)...)
	if !strings.Contains(r.Stdout, "retired") {
		t.Errorf("tool versions does not show version 1 retired:\n%s", r.Stdout)
	}

	// Everyone moves to version 2.
	var def struct {
		Pin revisioned `json:"pin"`
	}
	harness.GwctlJSON(t, g.env(), &def, append([]string{"tool", "set-default", "--version", "2", "--timeout", "20s", "-o", "json"}, tool...)...)
	awaitVersion(t, dp, uint64(def.Pin.Meta.Revision), 20*time.Second)
	mustCall(t, dp, g.opsKey, actionWeather, withUnits)
	awaitAudit(t, dp, func(r harness.AuditRecord) bool {
		return r.Agent == "ops-agent" && r.Outcome == "ok" && r.ToolVersion == 2
	})

	// The upstream changes the tool incompatibly ("units" required): the
	// diff names the breaking change and exits non-zero.
	changeTool(t, g.up, "get_weather", `{"inputSchema":`+weatherV3Schema+`}`)
	awaitRefusal(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "quarantined")
	diff := harness.Gwctl(t, g.env(), append([]string{"tool", "diff", "2", "live", "--timeout", "20s"}, tool...)...)
	if diff.OK() || !strings.Contains(diff.Stdout, "breaking") || !strings.Contains(diff.Stdout, "units") || !strings.Contains(diff.Stderr, "incompatible") {
		t.Fatalf("tool diff 2 live: %s", diff)
	}
	r = g.gwctl(t, append([]string{"tool", "approve", "--keep-default"}, tool...)...)
	if !strings.Contains(r.Stdout, "approved demo/get_weather version 3") || !strings.Contains(r.Stdout, "warning:") {
		t.Fatalf("approve of the incompatible definition printed %q, want version 3 and a warning about the versions in use", r.Stdout)
	}
	if diff := harness.Gwctl(t, g.env(), append([]string{"tool", "diff", "1", "3", "--timeout", "20s"}, tool...)...); diff.OK() || !strings.Contains(diff.Stdout, "units") {
		t.Errorf("tool diff 1 3: %s", diff)
	}
	// Callers of version 2 are refused as incompatible, not served a
	// definition their calls do not fit; version 2 cannot be assigned.
	ref = awaitRefusal(t, dp, g.opsKey, actionWeather, withUnits, "tool_version_incompatible")
	if !strings.Contains(ref.Text, "gwctl tool diff") {
		t.Errorf("incompatible refusal %q does not say what to do", ref.Text)
	}
	as := harness.Gwctl(t, g.env(), append([]string{"tool", "assign", "--version", "2", "--agent", "ops-agent", "--timeout", "20s"}, tool...)...)
	if as.OK() || !strings.Contains(as.Stderr, "incompatible") || !strings.Contains(as.Stderr, "units") {
		t.Errorf("assigning the incompatible version 2: %s", as)
	}
	// Moving everyone to version 3 serves them again.
	harness.GwctlJSON(t, g.env(), &def, append([]string{"tool", "set-default", "--version", "3", "--timeout", "20s", "-o", "json"}, tool...)...)
	harness.MustGwctl(t, g.env(), append([]string{"tool", "assign", "--version", "0", "--team", "canary", "--timeout", "20s"}, tool...)...)
	awaitVersion(t, dp, uint64(def.Pin.Meta.Revision), 20*time.Second)
	awaitCall(t, dp, canaryKey, actionWeather, withUnits)
	mustCall(t, dp, g.opsKey, actionWeather, withUnits)
	mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "invalid_arguments")
}

// awaitRefusal calls tool until the gateway refuses it with reason (each
// attempt after a tools/list, which re-checks the upstream's definitions)
// and returns that refusal.
func awaitRefusal(t *testing.T, dp *harness.Dataplane, key, tool string, args any, reason string) harness.ToolCall {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		listed(t, dp, key, tool)
		c, err := dp.CallTool(context.Background(), key, tool, args)
		if err == nil && c.Reason == reason {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s never refused with %q; last: %+v, %v", tool, reason, c, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// awaitCall calls tool until it succeeds.
func awaitCall(t *testing.T, dp *harness.Dataplane, key, tool string, args any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		listed(t, dp, key, tool)
		c, err := dp.CallTool(context.Background(), key, tool, args)
		if err == nil && c.Err() == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s never succeeded; last: %+v, %v", tool, c, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// listedSchema returns the input schema tools/list shows the agent holding
// key for action ("" when it is not listed).
func listedSchema(t *testing.T, dp *harness.Dataplane, key, action string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := harness.MCPCall(ctx, dp.URL+"/mcp", key, "tools/list", map[string]any{})
	if err != nil || res.Error != nil {
		t.Fatalf("tools/list: %v %v", err, res.Error)
	}
	var out struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(res.Result, &out); err != nil {
		t.Fatal(err)
	}
	for _, x := range out.Tools {
		if x.Name == action {
			return string(x.InputSchema)
		}
	}
	return ""
}
