// Command authzbench measures authorization decision latency as the policy
// count grows: with 10, 1,000 and 10,000 policies (configtest.Scale: policy
// i permits Agent::"agent-i" on tool i mod 200, plus ten forbids with
// argument conditions), p50/p99 of decisions for an agent that exactly one
// policy permits, with the decision cache off (every decision evaluated)
// and hit. The goal is that 10,000 policies decide no worse than twice as
// slowly as 10; the report says PASS or FAIL without failing the process.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// goalRatio is the most a decision with 10,000 policies may cost relative
// to one with 10.
const goalRatio = 2.0

// target is the agent (and with it the one permitting policy) measured.
const target = 7

func main() {
	out := flag.String("out", "", "also write the Markdown report to this file")
	decisions := flag.Int("decisions", 20_000, "decisions measured per row")
	flag.Parse()
	report, err := run(*decisions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "authzbench:", err)
		os.Exit(1)
	}
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "authzbench:", err)
			os.Exit(1)
		}
	}
}

// row is one measured configuration.
type row struct {
	policies int
	mode     string
	compile  time.Duration
	p50, p99 time.Duration
	mean     time.Duration
}

func run(decisions int) (string, error) {
	var rows []row
	for _, n := range []int{10, 1_000, 10_000} {
		snap := configtest.Scale(n)
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
		if err != nil {
			return "", fmt.Errorf("marshal snapshot: %w", err)
		}
		for _, mode := range []string{"miss (cache off)", "hit"} {
			size := 0
			if mode == "hit" {
				size = config.DefaultDecisionCacheSize
			}
			start := time.Now()
			c, err := config.Compile(data, config.WithDecisionCache(size))
			if err != nil {
				return "", fmt.Errorf("compile %d policies: %w", n, err)
			}
			compile := time.Since(start)
			call := &pipeline.Call{
				Protocol:  "mcp",
				Method:    "tools/call",
				Op:        pipeline.OpCall,
				Target:    pipeline.Target{Kind: pipeline.KindTool, Name: configtest.ScaleAction(target)},
				Arguments: json.RawMessage(`{"amount": 100, "to": "bob"}`),
				SourceIP:  netip.MustParseAddr("10.1.2.3"),
				Start:     configtest.VersionTime.Add(time.Hour),
				Config:    c,
				Mode:      configsyncv1.Mode_MODE_NORMAL,
				Agent:     snap.Agents[target],
			}
			lat, err := measure(c, call, decisions)
			if err != nil {
				return "", fmt.Errorf("%d policies, %s: %w", n, mode, err)
			}
			rows = append(rows, summarize(n+configtest.ScaleForbids, mode, compile, lat))
		}
	}
	return render(rows, decisions), nil
}

// measure times decisions calls of c.Authorize after a warm-up, each on
// its own, and checks every one is allowed by the target's policy alone.
func measure(c *config.Compiled, call *pipeline.Call, decisions int) ([]time.Duration, error) {
	want := fmt.Sprintf("scale/policy%d", target)
	ctx := context.Background()
	for range 1000 {
		c.Authorize(ctx, call)
	}
	runtime.GC()
	lat := make([]time.Duration, decisions)
	for i := range lat {
		start := time.Now()
		d := c.Authorize(ctx, call)
		lat[i] = time.Since(start)
		if !d.Allowed || !slices.Equal(d.Policies, []string{want}) {
			return nil, fmt.Errorf("decision %+v, want allowed by %s", d, want)
		}
	}
	return lat, nil
}

func summarize(policies int, mode string, compile time.Duration, lat []time.Duration) row {
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return row{
		policies: policies,
		mode:     mode,
		compile:  compile,
		p50:      lat[len(lat)/2],
		p99:      lat[len(lat)*99/100],
		mean:     sum / time.Duration(len(lat)),
	}
}

func render(rows []row, decisions int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Authorization latency (%d decisions per row, GOMAXPROCS %d)\n\n", decisions, runtime.GOMAXPROCS(0))
	b.WriteString("| policies | decision cache | compile | p50 | p99 | mean |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", r.policies, r.mode,
			r.compile.Round(time.Millisecond), us(r.p50), us(r.p99), us(r.mean))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Goal: a decision with 10,000 policies costs no more than %.0f× one with 10.\n\n", goalRatio)
	b.WriteString("| decision cache | p50 ratio | p99 ratio | result |\n|---|---:|---:|---|\n")
	for _, mode := range []string{"miss (cache off)", "hit"} {
		var small, large row
		for _, r := range rows {
			if r.mode != mode {
				continue
			}
			if r.policies == 10+configtest.ScaleForbids {
				small = r
			}
			if r.policies == 10_000+configtest.ScaleForbids {
				large = r
			}
		}
		p50 := float64(large.p50) / float64(small.p50)
		p99 := float64(large.p99) / float64(small.p99)
		result := "PASS"
		if p50 > goalRatio {
			result = "FAIL"
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %s (p50) |\n", mode, p50, p99, result)
	}
	return b.String()
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}
