package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// round is one leader kill.
type round struct {
	killed, elected string
	kill            time.Time // just before the SIGKILL
	back            time.Time // the killed node ready again
	outage          outage
}

// result is everything measured with one Raft timing.
type result struct {
	timing timing
	rounds []round
	tally  tally
}

func run(ctx context.Context, cfg config) error {
	binDir, err := os.MkdirTemp("", "failoverbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(os.Stderr, "failoverbench: building controlplane, gwctl …")
	if err := harness.BuildPrograms(binDir, "controlplane", "gwctl"); err != nil {
		return err
	}
	var results []result
	for _, tm := range cfg.timings {
		// The harness starts (and restarts) every node with
		// RaftTimingArgs; nil leaves the control plane's own defaults.
		harness.RaftTimingArgs = tm.args
		var res result
		p := harness.NewProgram(ctx, "failoverbench", os.Stderr)
		err := p.Run(func(t testing.TB) { res = measure(ctx, t, cfg, tm) })
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted")
		}
		if err != nil {
			return fmt.Errorf("%s timings: %w", tm.key, err)
		}
		results = append(results, res)
	}
	report := render(cfg, results)
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(cfg.out, []byte(report), 0o644)
	}
	return nil
}

// measure starts a three-node cluster with tm's timeouts and kills its
// leader cfg.rounds times under the workload.
func measure(ctx context.Context, t testing.TB, cfg config, tm timing) result {
	res := result{timing: tm}
	fmt.Fprintf(os.Stderr, "failoverbench: %s: starting a 3-node control plane …\n", tm.key)
	c := harness.StartCluster(t, 3)
	var targets []target
	for _, cp := range c.Nodes {
		targets = append(targets, target{node: cp.NodeID, api: c.AdminAPI(t, cp.URL)})
	}
	w := startWorkload(ctx, targets, cfg.interval, cfg.timeout, "fo-"+tm.key)
	defer w.stop()
	for i := range cfg.rounds {
		leader := c.Leader(t, harness.StartTimeout)
		if err := w.awaitStreak(ctx, time.Now(), 3*len(c.Nodes), 30*time.Second); err != nil {
			t.Fatalf("round %d: before the kill: %v", i+1, err)
		}
		kill := time.Now()
		leader.Kill()
		o, err := w.awaitRecovery(ctx, leader.NodeID, kill, 60*time.Second)
		if err != nil {
			t.Fatalf("round %d: after kill -9 of leader %s: %v", i+1, leader.NodeID, err)
		}
		elected := c.Leader(t, harness.StartTimeout)
		fmt.Fprintf(os.Stderr, "failoverbench: %s: round %d: killed %s, %s elected, writes accepted again after %s\n",
			tm.key, i+1, leader.NodeID, elected.NodeID, o.failover.Round(time.Millisecond))
		leader.Restart()
		leader.AwaitReady(t, harness.StartTimeout)
		res.rounds = append(res.rounds, round{killed: leader.NodeID, elected: elected.NodeID, kill: kill, back: time.Now(), outage: o})
		c.AwaitMembers(t, c.NodeIDs(), harness.StartTimeout)
	}
	w.stop()
	res.tally = w.tally(res.rounds)
	c.MustCleanShutdown(t)
	return res
}

func render(cfg config, results []result) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Leader failover\n\n")
	fmt.Fprintf(&b, "Setup: %s, %d CPUs, %s/%s; a 3-node control plane of real processes on loopback (TLS API, mutual-TLS Raft, raft-wal); "+
		"workload: one CreateAgent every %s, round robin over the 3 nodes, one attempt each (no client retry, %s timeout; followers forward to the leader); "+
		"per round: `kill -9` of the leader, then the time from the kill to the acknowledgement of the first write sent after it; the killed node is restarted and the cluster agrees on 3 voters before the next round.\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cfg.interval, cfg.timeout)
	for _, r := range results {
		fmt.Fprintf(&b, "### Raft timeouts: %s\n\n", r.timing.label)
		fmt.Fprintf(&b, "| round | killed | new leader | kill → write accepted | accepted through | writes failed meanwhile |\n|---:|---|---|---:|---|---:|\n")
		var d []time.Duration
		for i, rd := range r.rounds {
			o := rd.outage
			d = append(d, o.failover)
			via := "a follower"
			if o.first.node == rd.elected {
				via = "the new leader"
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s (%s) | %d |\n", i+1, rd.killed, rd.elected, ms(o.failover), o.first.node, via, o.failed)
		}
		slices.Sort(d)
		tl := r.tally
		fmt.Fprintf(&b, "\nFailover over %d rounds: min %s, median %s, max %s.\n\nWorkload: %d writes acknowledged; failed: %d during the elections, %d sent to the killed node before it was back, %d at other times; %d ticks skipped (%d writes in flight).\n",
			len(d), ms(d[0]), ms(d[len(d)/2]), ms(d[len(d)-1]), tl.ok, tl.election, tl.deadNode, tl.other, tl.skipped, maxInFlight)
		if len(tl.byCode) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(tl.byCode)) {
				parts = append(parts, fmt.Sprintf("%d %s", tl.byCode[k], k))
			}
			fmt.Fprintf(&b, "Failed during the elections, by Connect code: %s.\n", strings.Join(parts, ", "))
		}
		if s := sampleError(r.rounds); s != "" {
			fmt.Fprintf(&b, "A write failed during an election, for example: `%s`.\n", s)
		}
		if tl.otherSample != "" {
			fmt.Fprintf(&b, "**A write failed outside the outages**, for example: `%s`.\n", clip(tl.otherSample))
		}
		verdict := "FAIL"
		if d[len(d)-1] <= goal {
			verdict = "PASS"
		}
		fmt.Fprintf(&b, "\nGoal (every round's failover ≤ %s), %s: worst %s: **%s**\n\n", goal, r.timing.key, ms(d[len(d)-1]), verdict)
	}
	return b.String()
}

func sampleError(rounds []round) string {
	for _, r := range rounds {
		if s := r.outage.errSample; s != "" {
			return clip(s)
		}
	}
	return ""
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
