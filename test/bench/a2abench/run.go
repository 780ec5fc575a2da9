package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// measurement is everything measured on one path.
type measurement struct {
	name    string
	skipped string
	fixed   runResult
	tput    runResult
}

func (m measurement) ok() bool { return m.name != "" && m.skipped == "" }

// run builds the programs, starts everything, measures the paths and
// prints the report (and writes it to cfg.out).
func run(ctx context.Context, cfg config) error {
	if cfg.verbose {
		os.Setenv("PORTCULLIS_E2E_LOGS", "1")
	}
	binDir, err := os.MkdirTemp("", "a2abench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(os.Stderr, "a2abench: building controlplane, gwctl, dataplane, a2aagent …")
	if err := harness.BuildPrograms(binDir, "controlplane", "gwctl", "dataplane", "a2aagent"); err != nil {
		return err
	}
	nginxBin, nginxErr := harness.FindNginx(cfg.nginx)
	if nginxErr != nil {
		fmt.Fprintf(os.Stderr, "a2abench: WARNING: %v — the nginx row will read n/a\n", nginxErr)
	}
	var results []measurement
	p := harness.NewProgram(ctx, "a2abench", os.Stderr)
	err = p.Run(func(t testing.TB) {
		g := startGateway(t)
		none := func() []int { return nil }
		targets := []*target{newTarget(pathDirect, g.agent.URL, g.token, cfg.inflight, none)}
		if nginxErr == nil {
			url, pids := startNginx(t, nginxBin, g.agent.Addr)
			targets = append(targets, newTarget(pathNginx, url+"/rpc", g.token, cfg.inflight, pids))
		} else {
			results = append(results, measurement{name: pathNginx, skipped: nginxErr.Error()})
		}
		for _, v := range dpVariants {
			dp := g.dps[v.path]
			targets = append(targets, newTarget(v.path, dp.URL+"/a2a/travel", g.apiKey, cfg.inflight, func() []int { return []int{dp.Daemon().Pid()} }))
		}
		for _, tg := range targets {
			if ctx.Err() != nil {
				return
			}
			m := measurement{name: tg.name}
			if err := tg.call(ctx); err != nil {
				m.skipped = "the first call failed: " + err.Error()
				results = append(results, m)
				continue
			}
			fmt.Fprintf(os.Stderr, "a2abench: %s: %d calls/s for %s after %s warm-up …\n", tg.name, cfg.rate, cfg.duration, cfg.warmup)
			m.fixed = fixedRate(ctx, tg, cfg.rate, cfg.inflight, cfg.warmup, cfg.duration)
			fmt.Fprintf(os.Stderr, "a2abench: %s: closed loop, %d workers for %s …\n", tg.name, cfg.workers, cfg.tputDur)
			m.tput = maxThroughput(ctx, tg, cfg.workers, cfg.tputWarmup, cfg.tputDur)
			tg.close()
			results = append(results, m)
		}
	})
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	if err != nil {
		return err
	}
	report := renderReport(cfg, results)
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	for _, m := range results {
		if (m.skipped != "" && m.name != pathNginx) || (m.ok() && m.fixed.errors.total()+m.tput.errors.total() > 0) {
			return fmt.Errorf("calls failed (see the report)")
		}
	}
	return nil
}

// renderReport formats the Markdown report.
func renderReport(cfg config, results []measurement) string {
	var b strings.Builder
	host, _ := os.Hostname()
	by := map[string]measurement{}
	for _, m := range results {
		by[m.name] = m
	}
	fmt.Fprintf(&b, "## A2A SendMessage: direct vs nginx vs data plane\n\n")
	fmt.Fprintf(&b, "Setup: %s, %d CPUs, %s/%s, %s. Everything on loopback on this machine, the load generator included: "+
		"the test A2A agent (`test/a2aagent`, the official Go SDK's server, A2A 1.0 JSON-RPC, in-memory task store, bearer token), nginx "+
		"(`proxy_pass` over HTTP/1.1 to a keep-alive pool), and two data planes with the full pipeline (API-key authentication, Cedar on the "+
		"remote agent, task-id wrapping, audit) fed by a one-node control plane, with `--audit-sync=false` and `--audit-sync=true` (the default). "+
		"The call is a blocking `SendMessage` of one text part; the agent makes a task, adds an echo artifact and completes it, and the answer is the task.\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().Format("2006-01-02"))
	fmt.Fprintf(&b, "Fixed rate: %d calls/s, open loop, for %s after %s of warm-up; latency from each call's intended send time (no coordinated omission) "+
		"into an HDR histogram; at most %d calls in flight. Proxy CPU is user+system time of its processes in the measured window.\n\n",
		cfg.rate, cfg.duration, cfg.warmup, cfg.inflight)
	direct := by[pathDirect]
	fmt.Fprintf(&b, "| path | calls | errors | p50 | p90 | p99 | max | added p50 | added p99 | proxy CPU per call | max calls/s | proxy cores busy at max |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, name := range []string{pathDirect, pathNginx, pathDPAsync, pathDPDurable} {
		m, ok := by[name]
		if !ok || !m.ok() {
			fmt.Fprintf(&b, "| %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |\n", name)
			continue
		}
		r := m.fixed
		a50, a99, cpu, cores := "—", "—", "—", "—"
		if name != pathDirect && direct.ok() {
			a50, a99 = signed(r.pct(50)-direct.fixed.pct(50)), signed(r.pct(99)-direct.fixed.pct(99))
		}
		if name != pathDirect && r.calls > 0 {
			cpu = fmt.Sprintf("%d µs", (r.cpu / time.Duration(r.calls)).Microseconds())
			cores = fmt.Sprintf("%.2f", m.tput.cpu.Seconds()/m.tput.elapsed.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %.0f | %s |\n", name, r.calls, r.errors.total(),
			ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.max()), a50, a99, cpu, m.tput.perSec(), cores)
	}
	fmt.Fprintf(&b, "\nMaximum throughput: %d closed-loop workers for %s after %s of warm-up.\n", cfg.workers, cfg.tputDur, cfg.tputWarmup)
	fmt.Fprintf(&b, "\nGoals (the MCP benchmark's, issue 7; reported, never failing the build):\n\n")
	nginx, async := by[pathNginx], by[pathDPAsync]
	if !direct.ok() || !nginx.ok() || !async.ok() {
		fmt.Fprintf(&b, "- data plane (asynchronous audit) added p99 ≤ 1.5× nginx's, max throughput ≥ 0.7× nginx's: n/a (a path was not measured)\n")
	} else {
		dpAdded := async.fixed.pct(99) - direct.fixed.pct(99)
		ngAdded := nginx.fixed.pct(99) - direct.fixed.pct(99)
		if ngAdded <= 0 {
			fmt.Fprintf(&b, "- data plane (asynchronous audit) added p99 (%s) ≤ 1.5× nginx's (%s): n/a (nginx's p99 is not above direct's: noise; run longer)\n", signed(dpAdded), signed(ngAdded))
		} else {
			ratio := float64(dpAdded) / float64(ngAdded)
			fmt.Fprintf(&b, "- data plane (asynchronous audit) added p99 / nginx's = %s / %s = %.2f× (goal ≤ 1.5×) → %s\n", signed(dpAdded), signed(ngAdded), ratio, verdict(ratio <= 1.5))
		}
		if ng := nginx.tput.perSec(); ng > 0 {
			d := async.tput.perSec()
			fmt.Fprintf(&b, "- data plane (asynchronous audit) max throughput / nginx's = %.0f / %.0f calls/s = %.2f× (goal ≥ 0.7×) → %s\n", d, ng, d/ng, verdict(d/ng >= 0.7))
		}
	}
	var failed []string
	for _, m := range results {
		switch {
		case m.skipped != "" && m.name != pathNginx:
			failed = append(failed, fmt.Sprintf("%s: not measured: %s", m.name, m.skipped))
		case m.ok() && m.fixed.errors.total()+m.tput.errors.total() > 0:
			failed = append(failed, fmt.Sprintf("%s: failed calls: %s %s", m.name, m.fixed.errors, m.tput.errors))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "\n**ERRORS — THIS RUN IS NOT VALID:**\n\n")
		for _, f := range failed {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	} else {
		fmt.Fprintf(&b, "\nNo call failed: every answer was HTTP 200 with a JSON-RPC result holding a task.\n")
	}
	if m := by[pathNginx]; m.skipped != "" {
		fmt.Fprintf(&b, "\n**nginx was not available (%s): its row is n/a.**\n", m.skipped)
	}
	return b.String()
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}
