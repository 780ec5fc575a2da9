package gwctl_test

import (
	"slices"
	"strings"
	"testing"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

func TestInspectRuleCommands(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	server := []string{"--server", c.URLs()}

	r := gw(t, append(server, "inspect", "rule", "create", "rows", "--side", "response", "--mode", "shadow", "--action", "block",
		"--upstream", "db", "--tool", "query", "--team", "analysts", "--rows-path", "$.rows", "--max-rows", "1000",
		"--detector", "pii", "--detector", "injection.unicode_tags", "--pattern", `ACME-[0-9]{6}`,
		"--classifier-url", "http://127.0.0.1:9000/judge", "--classifier-timeout", "250ms", "--classifier-fail-closed",
		"--hold-back-bytes", "65536", "--owner", "sec")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, `inspection rule "rows" created (response, shadow`) {
		t.Errorf("create output: %q", r.stdout)
	}
	got := c.InspectionRule("rows")
	want := &configv1.InspectionRule{
		Side: configv1.InspectionSide_INSPECTION_SIDE_RESPONSE, Mode: configv1.InspectionMode_INSPECTION_MODE_SHADOW,
		Action: configv1.InspectionAction_INSPECTION_ACTION_BLOCK,
	}
	switch {
	case got == nil:
		t.Fatal("the rule was not stored")
	case got.GetSide() != want.GetSide() || got.GetMode() != want.GetMode() || got.GetAction() != want.GetAction():
		t.Errorf("side, mode, action = %v %v %v", got.GetSide(), got.GetMode(), got.GetAction())
	case got.GetScope().GetUpstream() != "db" || got.GetScope().GetTool() != "query" || got.GetScope().GetTeam() != "analysts":
		t.Errorf("scope = %v", got.GetScope())
	case got.GetRows().GetPath() != "$.rows" || got.GetRows().GetMaxRows() != 1000:
		t.Errorf("rows = %v", got.GetRows())
	case !slices.Equal(got.GetDetectors(), []string{"pii", "injection.unicode_tags"}) || len(got.GetPatterns()) != 1:
		t.Errorf("detectors %v, patterns %v", got.GetDetectors(), got.GetPatterns())
	case got.GetClassifier().GetUrl() != "http://127.0.0.1:9000/judge" || !got.GetClassifier().GetFailClosed() ||
		got.GetClassifier().GetTimeout().AsDuration().Milliseconds() != 250:
		t.Errorf("classifier = %v", got.GetClassifier())
	case got.GetHoldBackBytes() != 65536 || got.GetMeta().GetOwner() != "sec":
		t.Errorf("hold back %d, owner %q", got.GetHoldBackBytes(), got.GetMeta().GetOwner())
	}

	r = gw(t, append(server, "inspect", "rule", "get", "rows")...)
	mustSucceed(t, r)
	for _, want := range []string{"Side:", "response", "Mode:", "shadow", "Scope:", "db/query, team analysts", "at most 1000 at $.rows", "fails closed", "up to 65536 bytes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, format := range []string{"json", "yaml"} {
		r = gw(t, append(server, "inspect", "rule", "get", "rows", "-o", format)...)
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "INSPECTION_SIDE_RESPONSE") || !strings.Contains(r.stdout, "maxRows") {
			t.Errorf("%s output:\n%s", format, r.stdout)
		}
	}

	mustSucceed(t, gw(t, append(server, "inspect", "rule", "update", "rows", "--side", "response", "--mode", "enforce", "--action", "block",
		"--rows-path", "$.rows", "--max-rows", "1000")...))
	if m := c.InspectionRule("rows").GetMode(); m != configv1.InspectionMode_INSPECTION_MODE_ENFORCE {
		t.Errorf("mode after update = %v", m)
	}
	mustSucceed(t, gw(t, append(server, "inspect", "rule", "create", "no-exfil", "--side", "request", "--mode", "enforce", "--detector", "exfiltration")...))
	r = gw(t, append(server, "inspect", "rule", "list")...)
	mustSucceed(t, r)
	for _, want := range []string{"NAME", "LOOKS FOR", "no-exfil", "request", "every call", "exfiltration", "rows at $.rows ≤ 1000"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list output lacks %q:\n%s", want, r.stdout)
		}
	}
	mustSucceed(t, gw(t, append(server, "inspect", "rule", "delete", "no-exfil")...))
	if c.InspectionRule("no-exfil") != nil {
		t.Error("the rule is still stored after delete")
	}

	// Usage errors are refused before any call.
	before := len(c.Nodes[0].Requests())
	for _, args := range [][]string{
		{"inspect", "rule", "create", "x"},                                            // no side or mode
		{"inspect", "rule", "create", "x", "--side", "sideways", "--mode", "enforce"}, // bad enum
		{"inspect", "rule", "get"},
	} {
		if r := gw(t, append(server, args...)...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); stderr %s", args, r.code, r.stderr)
		}
	}
	if after := len(c.Nodes[0].Requests()); after != before {
		t.Errorf("usage errors made %d requests", after-before)
	}
}
