package gwctl

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/access"
)

func TestParseShares(t *testing.T) {
	tests := []struct {
		in   string
		want []uint32
		err  string
	}{
		{in: "5%,25%,50%", want: []uint32{500, 2500, 5000}},
		{in: " 0.5% , 100% ", want: []uint32{50, 10000}},
		{in: "12.25%", want: []uint32{1225}},
		{in: ""},
		{in: "5", err: "percentage"},
		{in: "0%", err: "above 0"},
		{in: "101%", err: "at most 100"},
		{in: "50%,25%", err: "must increase"},
		{in: "1.234%", err: "two decimals"},
	}
	for _, tt := range tests {
		got, err := parseShares(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseShares(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseShares(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if s := shareText(1225); s != "12.25%" {
		t.Errorf("shareText(1225) = %q", s)
	}
}

func TestLineDiff(t *testing.T) {
	a := "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n"
	b := "one\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\n"
	want := `--- v1
+++ v2
@@ -1,6 +1,6 @@
 one
 two
-three
+THREE
 four
 five
 six
@@ -8,3 +8,4 @@
 eight
 nine
 ten
+eleven
`
	if got := lineDiff("v1", "v2", a, b); got != want {
		t.Errorf("lineDiff:\n%s\nwant:\n%s", got, want)
	}
	if got := lineDiff("v1", "v2", a, a); got != "" {
		t.Errorf("equal texts give %q", got)
	}
	if got := lineDiff("v1", "v2", "", "x\n"); got != "--- v1\n+++ v2\n@@ -1,0 +1,1 @@\n+x\n" {
		t.Errorf("an added file gives %q", got)
	}
	// Texts that differ everywhere stop at the bound.
	var x, y strings.Builder
	for i := range maxDiffEdits {
		fmt.Fprintf(&x, "a%d\n", i)
		fmt.Fprintf(&y, "b%d\n", i)
	}
	if got := lineDiff("v1", "v2", x.String(), y.String()); !strings.Contains(got, "differ in more than") {
		t.Errorf("a huge diff: %.200q", got)
	}
}

func TestDiffPolicies(t *testing.T) {
	a := &configv1.PolicyVersion{Version: 1, Source: `@id("keep") permit(principal, action, resource);
@id("change") forbid(principal, action, resource) when { 1 > 2 };
@id("drop") permit(principal, action, resource);
`}
	b := &configv1.PolicyVersion{Version: 2, Source: `@id("keep")   permit(principal, action, resource);
@id("change") forbid(principal, action, resource) when { 1 > 3 };
@id("new") permit(principal, action, resource);
`}
	added, removed, changed, err := diffPolicies("s", a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(added, []string{"s/new"}) || !slices.Equal(removed, []string{"s/drop"}) || !slices.Equal(changed, []string{"s/change"}) {
		t.Fatalf("added %v, removed %v, changed %v", added, removed, changed)
	}
}

func TestWhenFlag(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-25T10:00:00Z":        time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		"2026-11-25T10:00:00.5+01:00": time.Date(2026, 11, 25, 9, 0, 0, 5e8, time.UTC),
		"24h":                         now.Add(-24 * time.Hour),
		"-90m":                        now.Add(-90 * time.Minute),
	} {
		ts, err := whenFlag("--from", in, now)
		if err != nil || !ts.AsTime().Equal(want) {
			t.Errorf("whenFlag(%q) = %v, %v; want %v", in, ts.AsTime(), err, want)
		}
	}
	if _, err := whenFlag("--from", "yesterday", now); err == nil {
		t.Error("whenFlag(yesterday) succeeded")
	}
	if ts, err := whenFlag("--from", "", now); ts != nil || err != nil {
		t.Errorf("an empty flag gives %v, %v", ts, err)
	}
}

func TestStoredCase(t *testing.T) {
	cases, err := access.ParseCases([]byte(`cases:
  - name: small
    agent: bot
    user: corp/alice
    groups: [finance]
    tool: pay__send
    args: {amount: 10}
    time: 2026-11-26T10:00:00Z
    expect: allow
    policies: []
  - agent: bot
    tool: pay__send
    expect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	first, err := storedCase(cases[0])
	if err != nil {
		t.Fatal(err)
	}
	if first.GetName() != "small" || first.GetArgumentsJson() != `{"amount":10}` || !first.GetCheckPolicies() || len(first.GetPolicies()) != 0 ||
		first.GetTime().AsTime().Hour() != 10 || first.GetUser() != "corp/alice" || first.GetGroups()[0] != "finance" {
		t.Fatalf("stored case %v", first)
	}
	second, err := storedCase(cases[1])
	if err != nil || second.GetCheckPolicies() || second.GetArgumentsJson() != "" {
		t.Fatalf("stored case %v, %v: no policies checked, no arguments", second, err)
	}
}
