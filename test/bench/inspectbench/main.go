// Command inspectbench measures the runtime inspection stage's own cost
// per call (stages.Inspect, as the data plane runs it: MCP's view of the
// messages, a compiled configuration) at 1 KiB and 64 KiB of arguments
// and of answer, against its line in the per-stage budget: at most 50 µs
// p50 at 1 KiB. The rules are a realistic set: exfiltration and secrets
// on the request (enforced) and personal data (shadow); personal data
// redacted, injected instructions blocked and a 1,000-row ceiling on the
// response. A row "no rules" measures the stage on a configuration
// without any. The report says PASS or FAIL without failing the process.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// budget is the stage's line in the per-stage budget (docs/performance.md).
const budget = 50 * time.Microsecond

func main() {
	out := flag.String("out", "", "also write the Markdown report to this file")
	calls := flag.Int("calls", 5_000, "calls measured per row")
	flag.Parse()
	report, err := run(*calls)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inspectbench:", err)
		os.Exit(1)
	}
	fmt.Print(report)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "inspectbench:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "inspectbench:", err)
			os.Exit(1)
		}
	}
}

func rule(name string, side configv1.InspectionSide, mode configv1.InspectionMode, action configv1.InspectionAction, edit func(*configv1.InspectionRule)) *configv1.InspectionRule {
	r := &configv1.InspectionRule{Meta: &configv1.ResourceMeta{Name: name}, Side: side, Mode: mode, Action: action}
	edit(r)
	return r
}

// rules is the measured rule set.
func rules() []*configv1.InspectionRule {
	const (
		req, resp         = configv1.InspectionSide_INSPECTION_SIDE_REQUEST, configv1.InspectionSide_INSPECTION_SIDE_RESPONSE
		enforce, shadow   = configv1.InspectionMode_INSPECTION_MODE_ENFORCE, configv1.InspectionMode_INSPECTION_MODE_SHADOW
		flag, redact, blk = configv1.InspectionAction_INSPECTION_ACTION_FLAG, configv1.InspectionAction_INSPECTION_ACTION_REDACT, configv1.InspectionAction_INSPECTION_ACTION_BLOCK
	)
	return []*configv1.InspectionRule{
		rule("no-exfil", req, enforce, flag, func(r *configv1.InspectionRule) { r.Detectors = []string{"exfiltration", "secrets"} }),
		rule("pii-in", req, shadow, flag, func(r *configv1.InspectionRule) { r.Detectors = []string{"pii"} }),
		rule("pii-out", resp, enforce, redact, func(r *configv1.InspectionRule) { r.Detectors = []string{"pii"} }),
		rule("poison", resp, enforce, blk, func(r *configv1.InspectionRule) { r.Detectors = []string{"injection"} }),
		rule("rows", resp, enforce, blk, func(r *configv1.InspectionRule) {
			r.Rows = &configv1.InspectionRowLimit{Path: "$.rows", MaxRows: 1000}
		}),
	}
}

// prose is ordinary text as tools carry it, with one email address in
// every few hundred bytes.
const prose = "The quarterly report lists 42 open invoices; contact billing at ap@example.com for copies. " +
	"Shipments to Oslo and Lisbon were delayed by weather, see https://status.example.com/incidents/1234 for details. " +
	"Totals are in EUR and include VAT at the local rate. "

func text(n int) string { return strings.Repeat(prose, n/len(prose)+1)[:n] }

// arguments is a tools/call arguments object of about n bytes.
func arguments(n int) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"to": "bob", "amount": 100, "memo": text(max(n-40, 1))})
	return b
}

// result is a tools/call result of about n bytes: a text part and the
// same data as structured content.
func result(n int) json.RawMessage {
	half := max(n/2-60, 1)
	b, _ := json.Marshal(map[string]any{
		"content":           []map[string]string{{"type": "text", "text": text(half)}},
		"structuredContent": map[string]any{"summary": text(half), "rows": []int{1, 2, 3}},
	})
	return b
}

type row struct {
	name            string
	size            int
	p50, p99, mean  time.Duration
	argBytes, bytes int
}

func run(calls int) (string, error) {
	var rows []row
	for _, withRules := range []bool{false, true} {
		snap := configtest.Snapshot()
		if withRules {
			snap.InspectionRules = rules()
		}
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
		if err != nil {
			return "", fmt.Errorf("marshal snapshot: %w", err)
		}
		cfg, err := config.Compile(data)
		if err != nil {
			return "", fmt.Errorf("compile: %w", err)
		}
		for _, size := range []int{1 << 10, 64 << 10} {
			r, err := measure(cfg, size, calls)
			if err != nil {
				return "", err
			}
			r.name = "no rules"
			if withRules {
				r.name = "5 rules (2 request, 3 response)"
			}
			rows = append(rows, r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Runtime inspection: the stage's own time per call\n\n")
	fmt.Fprintf(&b, "%d calls per row: a tools/call whose arguments and answer are each about the size shown, through stages.Inspect with MCP's view of the messages, one call at a time. Own time excludes the upstream.\n\n", calls)
	fmt.Fprintf(&b, "| rules | size | arguments | answer | p50 | p99 | mean |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d KiB | %d B | %d B | %s | %s | %s |\n", r.name, r.size>>10, r.argBytes, r.bytes, us(r.p50), us(r.p99), us(r.mean))
	}
	verdict := "FAIL"
	if rows[2].p50 <= budget {
		verdict = "PASS"
	}
	fmt.Fprintf(&b, "\nBudget: inspection ≤ %s p50 at 1 KiB: %s p50 with rules: **%s**.\n", us(budget), us(rows[2].p50), verdict)
	return b.String(), nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1000) }

// measure runs calls through the stage and returns its own time per call.
func measure(cfg *config.Compiled, size, calls int) (row, error) {
	body, args := result(size), arguments(size)
	var own []time.Duration
	observe := func(stage string, self time.Duration) {
		if stage == "inspect" {
			own = append(own, self)
		}
	}
	stage := pipeline.Timed(observe, stages.Inspect{Classifier: inspect.NewClassifierClient(nil)})[0]
	agent, _ := cfg.AgentByAPIKey(configtest.PayerKey, configtest.VersionTime)
	tool, ok := cfg.Tool(configtest.PayAction, agent)
	if !ok {
		return row{}, fmt.Errorf("no tool %s", configtest.PayAction)
	}
	terminal := func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		return &pipeline.Result{Body: body}, nil
	}
	for i := range calls + calls/10 {
		c := &pipeline.Call{
			Protocol: "mcp", Method: "tools/call", Op: pipeline.OpCall, Content: mcp.InspectionContent("tools/call"),
			Target:    pipeline.Target{Kind: pipeline.KindTool, Name: tool.Action, Upstream: tool.Upstream, Own: tool.Name, Tool: tool},
			Arguments: args, Agent: agent, SourceIP: netip.MustParseAddr("10.1.2.3"),
			Start: configtest.VersionTime, Config: cfg, Mode: configsyncv1.Mode_MODE_NORMAL,
		}
		if _, err := stage.Handle(context.Background(), c, terminal); err != nil {
			return row{}, fmt.Errorf("call %d refused: %w", i, err)
		}
		if i == 0 && len(c.Findings) == 0 && !cfg.Inspection().Empty() {
			return row{}, fmt.Errorf("the rules found nothing: the measured text should hold personal data")
		}
	}
	own = own[calls/10:] // warm-up
	slices.Sort(own)
	var sum time.Duration
	for _, d := range own {
		sum += d
	}
	return row{size: size, p50: own[len(own)/2], p99: own[len(own)*99/100], mean: sum / time.Duration(len(own)),
		argBytes: len(args), bytes: len(body)}, nil
}
