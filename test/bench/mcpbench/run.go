package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Path names, in the order they are measured and reported.
const (
	pathDirect    = "direct"
	pathNginx     = "nginx"
	pathDPAsync   = "data plane (async audit)"
	pathDPDurable = "data plane (durable audit)"
	pathDPShadow  = "data plane (durable audit, policy rollout in shadow)"
)

// measurement is everything measured on one path.
type measurement struct {
	name    string
	skipped string // why the path was not measured; empty when it was
	// unavailable: skipped because the proxy is not installed, which the
	// report states but does not count as an error.
	unavailable bool
	fixed       runResult
	tput        runResult
}

// run builds the programs, starts everything, measures the paths and
// prints the report (and writes it to cfg.out).
func run(ctx context.Context, cfg config) error {
	if cfg.verbose {
		os.Setenv("PORTCULLIS_E2E_LOGS", "1")
	}
	binDir, err := os.MkdirTemp("", "mcpbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(os.Stderr, "mcpbench: building controlplane, gwctl, dataplane, demoupstream …")
	if err := harness.BuildPrograms(binDir, "controlplane", "gwctl", "dataplane", "demoupstream"); err != nil {
		return err
	}
	fsync := fsyncP99(200)

	nginxBin, nginxErr := findNginx(cfg.nginx)
	if nginxErr != nil {
		fmt.Fprintf(os.Stderr, "mcpbench: WARNING: %v — the nginx rows will read n/a\n", nginxErr)
	}

	var results []measurement
	var setup string
	p := harness.NewProgram(ctx, "mcpbench", os.Stderr)
	err = p.Run(func(t testing.TB) {
		var variants []dpVariant
		for _, v := range dpVariants {
			if cfg.paths[v.key] {
				variants = append(variants, v)
			}
		}
		g := startGateway(t, variants)
		noProxy := func() []int { return nil }
		upPid := func() []int { return []int{g.upstream.Daemon().Pid()} }
		var targets []*target
		if cfg.paths["direct"] {
			targets = append(targets, newTarget(pathDirect, g.upstream.URL, toolName, "", cfg.inflight, noProxy))
		}
		nginxDesc := "nginx: n/a (" + errText(nginxErr) + ")"
		if nginxErr == nil && cfg.paths["nginx"] {
			n := startNginx(t, nginxBin, g.upstream.Addr)
			targets = append(targets, newTarget(pathNginx, n.URL+"/mcp", toolName, "", cfg.inflight, n.pids))
			nginxDesc = fmt.Sprintf("%s, %d worker(s) (`worker_processes auto`), `proxy_pass` over HTTP/1.1 to a keep-alive pool, `proxy_buffering off`, no access log",
				nginxVersion(nginxBin), len(n.pids())-1)
		}
		for _, v := range variants {
			dp := g.dps[v.path]
			tg := newTarget(v.path, dp.URL+"/mcp", actionName, g.apiKey, cfg.inflight, func() []int { return []int{dp.Daemon().Pid()} })
			tg.metrics = dp.Metrics
			targets = append(targets, tg)
		}
		setup = nginxDesc

		for _, tg := range targets {
			if ctx.Err() != nil {
				return
			}
			tg.upstream = upPid
			if tg.name == pathDPShadow {
				g.startShadow(t, g.dps[pathDPShadow])
			}
			m := measurement{name: tg.name}
			if err := tg.initialize(ctx); err != nil {
				t.Logf("%v", err)
				m.skipped = "initialize failed: " + err.Error()
				results = append(results, m)
				continue
			}
			fmt.Fprintf(os.Stderr, "mcpbench: %s: %d calls/s for %s after %s warm-up …\n", tg.name, cfg.rate, cfg.duration, cfg.warmup)
			m.fixed = fixedRate(ctx, tg, cfg.rate, cfg.inflight, cfg.warmup, cfg.duration)
			fmt.Fprintf(os.Stderr, "mcpbench: %s: closed loop, %d workers for %s …\n", tg.name, cfg.workers, cfg.tputDur)
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
	if nginxErr != nil && cfg.paths["nginx"] {
		i := 0
		if cfg.paths["direct"] {
			i = 1
		}
		results = slices.Insert(results, i, measurement{name: pathNginx, skipped: errText(nginxErr), unavailable: true})
	}

	report := renderReport(cfg, setup, fsync, results)
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
		if (m.skipped != "" && !m.unavailable) || m.fixed.errors.total()+m.tput.errors.total() > 0 {
			return fmt.Errorf("calls failed (see the report)")
		}
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fsyncP99 times n appends of 4 KiB each followed by fsync, in the
// temporary directory (where the data plane keeps its data here), and
// returns the p99, or 0 when the file cannot be written.
func fsyncP99(n int) time.Duration {
	dir, err := os.MkdirTemp("", "mcpbench-fsync-")
	if err != nil {
		return 0
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "fsync"))
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0
		}
		if err := f.Sync(); err != nil {
			return 0
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, len(lat)*99/100)]
}

// renderReport formats the Markdown report.
func renderReport(cfg config, nginxDesc string, fsync time.Duration, results []measurement) string {
	var b strings.Builder
	host, _ := os.Hostname()
	byName := map[string]measurement{}
	for _, m := range results {
		byName[m.name] = m
	}
	fmt.Fprintf(&b, "## MCP tools/call: direct vs nginx vs data plane\n\n")
	fmt.Fprintf(&b, "Setup: %s, %d CPUs, %s/%s, %s. Everything on loopback on this machine, the load generator included: "+
		"the demo upstream (`test/demoupstream`, Go MCP SDK, event-stream answers, one session per path), "+
		"%s, and three data planes with the full pipeline (API-key authentication, Cedar, schema validation, audit to the local "+
		"hash-chained log), fed by one one-node control plane: one with `--audit-sync=false` (asynchronous audit: a call is answered "+
		"once its record is written to the OS, which is fsynced every 100 ms), one with `--audit-sync=true`, the default "+
		"(durable audit: a call is answered once its record is fsynced, in a group commit), and a third like the second, measured last, "+
		"after a rollout of the policy set was started in shadow (each call is also decided by the candidate, and counted). "+
		"Each is measured alone while the others idle. "+
		"The call is `tools/call get_weather {\"city\":\"Oslo\"}` in one MCP session per path (initialize once, then `Mcp-Session-Id`).\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().Format("2006-01-02"), nginxDesc)
	fmt.Fprintf(&b, "Fixed rate: %d calls/s, open loop, for %s after %s of warm-up; latency from each call's intended send time "+
		"(no coordinated omission) into an HDR histogram; at most %d calls in flight. CPU is user+system time of the proxy's processes "+
		"(/proc/<pid>/stat) in the measured window; RSS is their peak (VmHWM, summed over nginx's master and workers).\n\n",
		cfg.rate, cfg.duration, cfg.warmup, cfg.inflight)

	measured := func(m measurement) bool { return m.name != "" && m.skipped == "" }
	direct := byName[pathDirect]
	haveDirect := measured(direct)
	fmt.Fprintf(&b, "| path | calls | errors | p50 | p90 | p99 | max | mean | added p50 | added p99 | proxy CPU | CPU per call | proxy peak RSS | upstream CPU per call |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range results {
		if m.skipped != "" {
			fmt.Fprintf(&b, "| %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |\n", m.name)
			continue
		}
		r := m.fixed
		added50, added99, cpu, perCall, rss := "—", "—", "—", "—", "—"
		if m.name != pathDirect {
			if haveDirect {
				added50 = signed(r.pct(50) - direct.fixed.pct(50))
				added99 = signed(r.pct(99) - direct.fixed.pct(99))
			}
			cpu = fmt.Sprintf("%.2f s", r.cpu.Seconds())
			perCall = perCallText(r.cpu, r.calls)
			rss = fmt.Sprintf("%.1f MiB", float64(r.rss)/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.name, r.calls, r.errors.total(),
			ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.max()), ms(r.mean()), added50, added99, cpu, perCall, rss, perCallText(r.upCPU, r.calls))
	}

	fmt.Fprintf(&b, "\nMaximum throughput: %d closed-loop workers for %s after %s of warm-up; calls answered in the window per second.\n\n",
		cfg.workers, cfg.tputDur, cfg.tputWarmup)
	fmt.Fprintf(&b, "| path | calls/s | errors | p50 | p99 | proxy CPU (cores busy) | proxy peak RSS | upstream CPU (cores busy) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range results {
		if m.skipped != "" {
			fmt.Fprintf(&b, "| %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a |\n", m.name)
			continue
		}
		r := m.tput
		cores, rss := "—", "—"
		if m.name != pathDirect {
			cores = fmt.Sprintf("%.2f", r.cpu.Seconds()/r.elapsed.Seconds())
			rss = fmt.Sprintf("%.1f MiB", float64(r.rss)/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %.0f | %d | %s | %s | %s | %s | %.2f |\n", m.name, okPerSec(r), r.errors.total(), ms(r.pct(50)), ms(r.pct(99)), cores, rss, r.upCPU.Seconds()/r.elapsed.Seconds())
	}

	fmt.Fprintf(&b, "\nThis machine's fsync p99 (200 × 4 KiB write + fsync in the temp dir, where the data planes keep their audit logs): %s.\n", fsyncText(fsync))

	// Each data plane's stage breakdown of the mean latency it adds.
	for _, name := range []string{pathDPAsync, pathDPDurable, pathDPShadow} {
		m := byName[name]
		switch {
		case !measured(m):
			continue
		case m.fixed.stagesErr != nil:
			fmt.Fprintf(&b, "\n#### %s: where the added latency goes\n\nn/a: %v\n", name, m.fixed.stagesErr)
		case len(m.fixed.stages) == 0:
			fmt.Fprintf(&b, "\n#### %s: where the added latency goes\n\nn/a: no `%s` observations in /metrics during the window.\n", name, stageMetric)
		case !haveDirect:
			fmt.Fprintf(&b, "\n#### %s: where the added latency goes\n\nn/a: the direct path was not measured, so the added latency is unknown.\n", name)
		default:
			renderBreakdown(&b, name, m.fixed.calls, breakdown(m.fixed, direct.fixed))
		}
	}

	fmt.Fprintf(&b, "\nGoals (issue 7; reported, never failing the build):\n\n")
	renderGoals(&b, byName, fsync)

	var failed []string
	for _, m := range results {
		if m.skipped != "" && !m.unavailable {
			failed = append(failed, fmt.Sprintf("%s: not measured: %s", m.name, m.skipped))
		}
		if n := m.fixed.errors.total(); n > 0 {
			failed = append(failed, fmt.Sprintf("%s, fixed rate: %d failed calls: %s", m.name, n, m.fixed.errors))
		}
		if n := m.tput.errors.total(); n > 0 {
			failed = append(failed, fmt.Sprintf("%s, max throughput: %d failed calls: %s", m.name, n, m.tput.errors))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "\n**ERRORS — THIS RUN IS NOT VALID:**\n\n")
		for _, f := range failed {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	} else {
		fmt.Fprintf(&b, "\nNo call failed: every answer was HTTP 200 with a JSON-RPC result that is not an error.\n")
	}
	if m := byName[pathNginx]; m.unavailable {
		fmt.Fprintf(&b, "\n**nginx was not available (%s): its rows are n/a.**\n", m.skipped)
	}
	return b.String()
}

// renderGoals writes the PASS/FAIL lines of issue 7's MCP goals: the
// asynchronous-audit data plane against nginx (added p99, throughput),
// and durable against asynchronous audit (added p99 within one fsync).
func renderGoals(b *strings.Builder, byName map[string]measurement, fsync time.Duration) {
	measured := func(m measurement) bool { return m.name != "" && m.skipped == "" }
	direct, nginx, async, durable := byName[pathDirect], byName[pathNginx], byName[pathDPAsync], byName[pathDPDurable]
	if !measured(direct) || !measured(nginx) || !measured(async) {
		fmt.Fprintf(b, "- data plane (asynchronous audit) added p99 ≤ 1.5× nginx's added p99: n/a (a path was not measured)\n")
		fmt.Fprintf(b, "- data plane (asynchronous audit) max throughput ≥ 0.7× nginx's: n/a (a path was not measured)\n")
	} else {
		dpAdded := async.fixed.pct(99) - direct.fixed.pct(99)
		ngAdded := nginx.fixed.pct(99) - direct.fixed.pct(99)
		if ngAdded <= 0 {
			fmt.Fprintf(b, "- data plane (asynchronous audit) added p99 (%s) ≤ 1.5× nginx's added p99 (%s): n/a (nginx's p99 is not above direct's: noise; run longer)\n", signed(dpAdded), signed(ngAdded))
		} else {
			ratio := float64(dpAdded) / float64(ngAdded)
			fmt.Fprintf(b, "- data plane (asynchronous audit) added p99 / nginx's added p99 = %s / %s = %.2f× (goal ≤ 1.5×) → %s\n", signed(dpAdded), signed(ngAdded), ratio, verdict(ratio <= 1.5))
		}
		ng, d := okPerSec(nginx.tput), okPerSec(async.tput)
		if ng <= 0 {
			fmt.Fprintf(b, "- data plane (asynchronous audit) max throughput ≥ 0.7× nginx's: n/a (nginx answered no call)\n")
		} else {
			fmt.Fprintf(b, "- data plane (asynchronous audit) max throughput / nginx's = %.0f / %.0f calls/s = %.2f× (goal ≥ 0.7×) → %s\n", d, ng, d/ng, verdict(d/ng >= 0.7))
		}
	}
	const slack = 200 * time.Microsecond
	switch {
	case !measured(async) || !measured(durable):
		fmt.Fprintf(b, "- durable audit adds at p99 ≤ one fsync p99 + 0.2 ms over asynchronous: n/a (a data plane was not measured)\n")
	case fsync == 0:
		fmt.Fprintf(b, "- durable audit adds at p99 ≤ one fsync p99 + 0.2 ms over asynchronous: n/a (fsync p99 unknown)\n")
	default:
		extra := durable.fixed.pct(99) - async.fixed.pct(99)
		fmt.Fprintf(b, "- durable audit p99 − asynchronous audit p99 = %s − %s = %s; fsync p99 + 0.2 ms = %s (goal: at most that) → %s\n",
			ms(durable.fixed.pct(99)), ms(async.fixed.pct(99)), signed(extra), ms(fsync+slack), verdict(extra <= fsync+slack))
	}
	shadow := byName[pathDPShadow]
	if extra, one, ok := shadowCost(shadow, durable); ok {
		fmt.Fprintf(b, "- shadow evaluation costs at most one extra decision: (rollout + authorize) with the rollout − authorize without = %s per call; "+
			"one decision (authorize without a rollout) = %s → %s\n", signedUs(extra), us(one), verdict(extra <= one))
	} else if measured(shadow) {
		fmt.Fprintf(b, "- shadow evaluation costs at most one extra decision: n/a (the durable row, or a rollout or authorize stage, is missing)\n")
	}
	for _, m := range []measurement{async, durable, shadow} {
		if measured(direct) && measured(m) {
			fmt.Fprintf(b, "- (for reference) %s max throughput / direct = %.2f×\n", m.name, okPerSec(m.tput)/max(okPerSec(direct.tput), 1))
		}
	}
}

// perCallText is cpu divided over calls, in microseconds.
func perCallText(cpu time.Duration, calls int) string {
	if calls == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%d µs", (cpu / time.Duration(calls)).Microseconds())
}

func okPerSec(r runResult) float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.calls-r.errors.total()) / r.elapsed.Seconds()
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// ms formats a latency in milliseconds with microsecond precision.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}

func fsyncText(d time.Duration) string {
	if d == 0 {
		return "n/a (could not write a temp file)"
	}
	return ms(d)
}

// shadowCost is what shadow evaluation adds per call: the shadow row's
// rollout and authorize stages together (the stage that decides first
// pays for warming up, so the two are counted together) minus the
// authorize stage of the same data plane without a rollout, which is
// also one decision's time.
func shadowCost(shadow, plain measurement) (extra, one time.Duration, ok bool) {
	if shadow.name == "" || shadow.skipped != "" || plain.name == "" || plain.skipped != "" {
		return 0, 0, false
	}
	r, okR := shadow.fixed.stages["rollout"]
	a, okA := shadow.fixed.stages["authorize"]
	p, okP := plain.fixed.stages["authorize"]
	return r.mean() + a.mean() - p.mean(), p.mean(), okR && okA && okP
}
