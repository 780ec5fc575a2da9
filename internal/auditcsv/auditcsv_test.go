package auditcsv_test

import (
	"bytes"
	"encoding/csv"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditcsv"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

func TestCell(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"formula", "=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"},
		{"plus", "+1+2", "'+1+2"},
		{"minus", "-2+3", "'-2+3"},
		{"at", "@SUM(A1)", "'@SUM(A1)"},
		{"tab", "\t=1", "'\t=1"},
		{"carriage return", "\r=1", "'\r=1"},
		{"plain", "ops-agent", "ops-agent"},
		{"formula later on", "a=1", "a=1"},
		{"empty", "", ""},
		{"quote already", "'=1", "'=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auditcsv.Cell(tt.in); got != tt.want {
				t.Errorf("Cell(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestWriterEscapesEveryColumn: a record whose text fields all start like
// formulas comes out with every such cell escaped, in Header's columns,
// and parses back as CSV.
func TestWriterEscapesEveryColumn(t *testing.T) {
	r := &auditv1.Record{
		Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), Dataplane: "dp1", Sequence: 7,
		Agent: "=agent", User: "+user", Protocol: "mcp", Method: "tools/call", Upstream: "@up", Tool: "-tool",
		Decision: "allow", Policies: []string{"=p1", "p2"}, Outcome: "ok", Reason: "=reason", Mode: "normal",
		Latency: durationpb.New(1500 * time.Microsecond), SourceIp: "127.0.0.1",
		ArgumentsJson: `{"a":"=1"}`, Hash: []byte{0xab}, TargetOwn: "=own",
	}
	var buf bytes.Buffer
	w := auditcsv.NewWriter(&buf)
	if err := w.Write([]*auditv1.Record{r}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]*auditv1.Record{r}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || !slices.Equal(rows[0], auditcsv.Header) {
		t.Fatalf("rows = %q, want the header once and two records", rows)
	}
	got := map[string]string{}
	for i, h := range auditcsv.Header {
		got[h] = rows[1][i]
	}
	want := map[string]string{
		"time": "2026-01-02T03:04:05Z", "agent": "'=agent", "user": "'+user", "upstream": "'@up", "tool": "'-tool",
		"policies": "'=p1 p2", "reason": "'=reason", "latency_ms": "1.500", "arguments_json": `{"a":"=1"}`, "hash": "ab",
		"target_own": "'=own",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for h, c := range got {
		if c != "" && slices.Contains([]byte("=+-@"), c[0]) {
			t.Errorf("column %s starts a formula: %q", h, c)
		}
	}
}

func TestFindings(t *testing.T) {
	r := &auditv1.Record{
		Findings: []*auditv1.Finding{
			{Detector: "pii", Kind: "email", Rule: "pii-out", Mode: "enforce", Action: "redact", Location: "content[0].text[0:16]"},
			{Detector: "pii", Kind: "email", Rule: "pii-out", Mode: "enforce", Action: "redact", Location: "content[0].text[20:36]"},
			{Detector: "rows", Kind: "ceiling", Rule: "rows", Mode: "shadow", Action: "block"},
		},
		FindingsOmitted: 5,
	}
	want := "pii.email redact by pii-out ×2; rows.ceiling block by rows (shadow); and 5 more"
	if got := auditcsv.Findings(r); got != want {
		t.Errorf("Findings = %q, want %q", got, want)
	}
	if got := auditcsv.Findings(&auditv1.Record{}); got != "" {
		t.Errorf("no findings = %q", got)
	}
	row := auditcsv.Row(r)
	col := slices.Index(auditcsv.Header, "findings")
	if col < 0 || row[col] != want {
		t.Errorf("the findings column (%d) of %q", col, row)
	}
}

// TestActorAndTargetOfDerivedRecords: the control plane's records of
// learned values and alerts name who and what they are about.
func TestActorAndTargetOfDerivedRecords(t *testing.T) {
	approved := &auditv1.LearnedEntry{List: "payees", Scope: "agent:billing-bot", Value: "acme", Change: "approved", TokenId: "op-token"}
	learned := &auditv1.LearnedEntry{List: "payees", Scope: "agent:billing-bot", Value: "globex", Change: "learned", RecordId: "dp1/4"}
	tests := []struct {
		name                  string
		r                     *auditv1.Record
		wantActor, wantTarget string
	}{
		{name: "approval", r: &auditv1.Record{Detail: &auditv1.Record_Learned{Learned: &auditv1.LearnedDetail{Entries: []*auditv1.LearnedEntry{approved}}}},
			wantActor: "op-token", wantTarget: `approved "acme" in payees agent:billing-bot`},
		{name: "several learned, some full", r: &auditv1.Record{Detail: &auditv1.Record_Learned{Learned: &auditv1.LearnedDetail{
			Entries: []*auditv1.LearnedEntry{learned, approved}, Unlisted: 3, Dropped: 2}}},
			wantTarget: `learned "globex" in payees agent:billing-bot (+4), 2 dropped (full)`},
		{name: "only unlisted entries", r: &auditv1.Record{Detail: &auditv1.Record_Learned{Learned: &auditv1.LearnedDetail{Unlisted: 5}}},
			wantTarget: "5 learned value(s)"},
		{name: "alert sent", r: &auditv1.Record{Detail: &auditv1.Record_Alert{Alert: &auditv1.AlertDetail{
			Rule: "security", Alert: "a0001", RecordId: "dp1/9", Outcome: "sent"}}},
			wantTarget: "alert a0001 (security) sent for dp1/9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auditcsv.Actor(tt.r); got != tt.wantActor {
				t.Errorf("Actor = %q, want %q", got, tt.wantActor)
			}
			if got := auditcsv.Target(tt.r); got != tt.wantTarget {
				t.Errorf("Target = %q, want %q", got, tt.wantTarget)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		r    *auditv1.Record
		want string
	}{
		{&auditv1.Record{}, ""},
		{&auditv1.Record{RateLimits: []string{"per-agent", "slots"}}, "rate limits per-agent, slots"},
		{&auditv1.Record{RateLimits: []string{"try-it"}, RateLimitShadow: true}, "rate limits try-it (shadow)"},
		{&auditv1.Record{ShadowBudgets: []string{"monthly", "daily"}}, "shadow budgets monthly, daily"},
		{&auditv1.Record{RateLimits: []string{"try-it"}, RateLimitShadow: true, ShadowBudgets: []string{"monthly"}},
			"rate limits try-it (shadow); shadow budgets monthly"},
	} {
		if got := auditcsv.Limits(tc.r); got != tc.want {
			t.Errorf("Limits(%v) = %q, want %q", tc.r, got, tc.want)
		}
	}
	row := auditcsv.Row(&auditv1.Record{ShadowBudgets: []string{"monthly"}})
	if len(row) != len(auditcsv.Header) || auditcsv.Header[len(row)-1] != "limits" || row[len(row)-1] != "shadow budgets monthly" {
		t.Errorf("Row's limits cell: %q under %q", row[len(row)-1], auditcsv.Header[len(auditcsv.Header)-1])
	}
}
