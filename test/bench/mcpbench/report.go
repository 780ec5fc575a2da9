package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// measured reports whether m holds figures.
func (m *measurement) measured() bool {
	return m != nil && m.skipped == "" && len(m.fixed) > 0
}

// mergedFixed is m's fixed-rate latencies, every round together.
func mergedFixed(m *measurement) *hdrhistogram.Histogram {
	h := newHist()
	for _, r := range m.fixed {
		h.Merge(r.hist)
	}
	return h
}

// merged is m's fixed-rate rounds as one run: latencies, calls, errors and
// stage times together.
func merged(m *measurement) runResult {
	out := runResult{errors: errorCounts{}, hist: mergedFixed(m)}
	for _, r := range m.fixed {
		out.calls += r.calls
		out.errors.add(r.errors)
		out.elapsed += r.elapsed
		out.cpu += r.cpu
		out.stages = out.stages.plus(r.stages)
		if r.stagesErr != nil && out.stagesErr == nil {
			out.stagesErr = r.stagesErr
		}
	}
	return out
}

// each summarises f over m's fixed-rate rounds.
func (m *measurement) each(f func(runResult) float64) spread {
	var vs []float64
	for _, r := range m.fixed {
		vs = append(vs, f(r))
	}
	return spreadOf(vs)
}

// eachTput summarises f over m's throughput rounds.
func (m *measurement) eachTput(f func(runResult) float64) spread {
	var vs []float64
	for _, r := range m.tput {
		vs = append(vs, f(r))
	}
	return spreadOf(vs)
}

// added summarises, over the rounds, m's q-th percentile minus the direct
// path's in the same round.
func (m *measurement) added(direct *measurement, q float64) spread {
	if !direct.measured() {
		return spread{}
	}
	var vs []float64
	for i, r := range m.fixed {
		if i < len(direct.fixed) {
			vs = append(vs, float64(r.pct(q)-direct.fixed[i].pct(q)))
		}
	}
	return spreadOf(vs)
}

// cpuPerCall summarises the proxy's CPU per call (ns) over the rounds.
func (m *measurement) cpuPerCall() spread {
	return m.each(func(r runResult) float64 { return perCall(r.cpu, r.calls) })
}

func (m *measurement) upCPUPerCall() spread {
	return m.each(func(r runResult) float64 { return perCall(r.upCPU, r.calls) })
}

func (m *measurement) throughput() spread { return m.eachTput(okPerSec) }

func perCall(cpu time.Duration, calls int) float64 {
	if calls == 0 {
		return 0
	}
	return float64(cpu) / float64(calls)
}

func pct(q float64) func(runResult) float64 {
	return func(r runResult) float64 { return float64(r.pct(q)) }
}

// peakRSS is the largest peak RSS of the proxy's processes over every run.
func (m *measurement) peakRSS() int64 {
	var hwm int64
	for _, r := range slices.Concat(m.fixed, m.tput) {
		hwm = max(hwm, r.rss)
	}
	return hwm
}

// renderReport formats the Markdown report.
func renderReport(cfg config, st setup, results []*measurement) string {
	var b strings.Builder
	host, _ := os.Hostname()
	byName := map[string]*measurement{}
	for _, m := range results {
		byName[m.name] = m
	}
	direct := byName[pathDirect]

	fmt.Fprintf(&b, "## MCP tools/call: direct vs nginx vs data plane\n\n")
	fmt.Fprintf(&b, "Setup: %s, %d CPUs, %s/%s, %s. Everything on loopback on this machine, the load generator included: "+
		"%s, %s, and two data planes with the full pipeline (API-key authentication, Cedar, schema validation, audit to the local "+
		"hash-chained log), fed by one one-node control plane: one with `--audit-sync=false` (asynchronous audit: a call is answered "+
		"once its record is written to the OS, which is fsynced every 100 ms) and one with `--audit-sync=true`, the default "+
		"(durable audit: a call is answered once its record is fsynced, in a group commit). Each path is measured alone while the others idle. "+
		"The call is `tools/call get_weather {\"city\":\"Oslo\"}` (a 120-byte request, a 180-byte answer) in one MCP session per path (initialize once, then `Mcp-Session-Id`).\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().Format("2006-01-02"), st.upstream, st.nginx)
	fmt.Fprintf(&b, "Fixed rate: %d calls/s, open loop, in %d windows of %s per path (each after %s of warm-up), interleaved across the paths; "+
		"latency from each call's intended send time (no coordinated omission) into an HDR histogram; at most %d calls in flight. "+
		"Each figure is the median of the windows, with their range in brackets; \"added\" is a path's percentile minus the direct path's in the same round. "+
		"CPU is the proxy's processes' run time in the window (the sum over their threads of /proc/<pid>/task/<tid>/schedstat, in ns; "+
		"for nginx, master and workers) divided by the calls; RSS is their peak (VmHWM, summed over nginx's processes).\n\n",
		cfg.rate, cfg.rounds, cfg.duration, cfg.warmup, cfg.inflight)

	// Fixed rate: medians and spread.
	fmt.Fprintf(&b, "| path | calls | errors | p50 | p99 | max | added p50 | added p99 | proxy CPU per call | proxy peak RSS | upstream CPU per call |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range results {
		if !m.measured() {
			fmt.Fprintf(&b, "| %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |\n", m.name)
			continue
		}
		all := merged(m)
		added50, added99, cpu, rss := "—", "—", "—", "—"
		if m.name != pathDirect {
			added50, added99 = m.added(direct, 50).signedMsText(), m.added(direct, 99).signedMsText()
			cpu = m.cpuPerCall().usText()
			rss = fmt.Sprintf("%.1f MiB", float64(m.peakRSS())/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.name, all.calls, all.errors.total(),
			m.each(pct(50)).msText(), m.each(pct(99)).msText(), m.each(func(r runResult) float64 { return float64(r.max()) }).msText(),
			added50, added99, cpu, rss, m.upCPUPerCall().usText())
	}

	fmt.Fprintf(&b, "\nEach window (for the spread):\n\n| path | window | calls | p50 | p90 | p99 | max | mean | proxy CPU per call |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range results {
		if !m.measured() {
			continue
		}
		for i, r := range m.fixed {
			cpu := "—"
			if m.name != pathDirect {
				cpu = fmt.Sprintf("%.0f µs", perCall(r.cpu, r.calls)/1e3)
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s |\n", m.name, i+1, r.calls, ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.max()), ms(r.mean()), cpu)
		}
	}

	fmt.Fprintf(&b, "\nMaximum throughput: %d closed-loop workers, %d runs of %s per path (each after %s of warm-up), interleaved; calls answered in the window per second.\n\n",
		cfg.workers, cfg.tputRounds, cfg.tputDur, cfg.tputWarmup)
	fmt.Fprintf(&b, "| path | calls/s | errors | p50 | p99 | proxy cores busy | upstream cores busy |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range results {
		if !m.measured() || len(m.tput) == 0 {
			fmt.Fprintf(&b, "| %s | n/a | n/a | n/a | n/a | n/a | n/a |\n", m.name)
			continue
		}
		errs := 0
		for _, r := range m.tput {
			errs += r.errors.total()
		}
		cores := "—"
		if m.name != pathDirect {
			cores = m.eachTput(func(r runResult) float64 { return r.cpu.Seconds() / r.elapsed.Seconds() }).numText(2)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s |\n", m.name, m.throughput().numText(0), errs,
			m.eachTput(pct(50)).msText(), m.eachTput(pct(99)).msText(), cores,
			m.eachTput(func(r runResult) float64 { return r.upCPU.Seconds() / r.elapsed.Seconds() }).numText(2))
	}

	fmt.Fprintf(&b, "\nThis disk's fsync latency (%d × %d-byte append + fsync in the temp dir, where the data planes keep their audit logs, before the paths ran): %s.\n",
		st.fsync.n, st.fsync.size, fsyncText(st.fsync))
	if st.plotPath != "" {
		if st.plotErr != nil {
			fmt.Fprintf(&b, "\nLatency percentile plot: n/a (%v).\n", st.plotErr)
		} else {
			fmt.Fprintf(&b, "\nLatency percentile plot (every fixed-rate window of each path, merged): `%s`.\n", st.plotPath)
		}
	}

	renderAllocs(&b, st.allocs, byName)
	renderStageSection(&b, byName, st.fsync)

	fmt.Fprintf(&b, "\n### Goals (issue 14; reported, never failing the build)\n\n")
	renderGoals(&b, byName, st.fsync, st.allocs, st.spans)

	var failed []string
	for _, m := range results {
		if m.skipped != "" && !m.unavailable {
			failed = append(failed, fmt.Sprintf("%s: not measured: %s", m.name, m.skipped))
		}
		for i, r := range m.fixed {
			if n := r.errors.total(); n > 0 {
				failed = append(failed, fmt.Sprintf("%s, fixed-rate window %d: %d failed calls: %s", m.name, i+1, n, r.errors))
			}
		}
		for i, r := range m.tput {
			if n := r.errors.total(); n > 0 {
				failed = append(failed, fmt.Sprintf("%s, throughput run %d: %d failed calls: %s", m.name, i+1, n, r.errors))
			}
		}
	}
	if st.allocs.err != nil {
		failed = append(failed, "allocation benchmark: "+st.allocs.err.Error())
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "\n**ERRORS — THIS RUN IS NOT VALID:**\n\n")
		for _, f := range failed {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	} else {
		fmt.Fprintf(&b, "\nNo call failed: every answer was HTTP 200 with a JSON-RPC result that is not an error.\n")
	}
	if m := byName[pathNginx]; m != nil && m.unavailable {
		fmt.Fprintf(&b, "\n**nginx was not available (%s): its rows are n/a.**\n", m.skipped)
	}
	fmt.Fprintf(&b, "\nThe whole run took %s.\n", st.elapsed.Round(time.Second))
	return b.String()
}

// renderAllocs writes the allocation figures: the Go benchmark's and the
// live data planes'.
func renderAllocs(b *strings.Builder, rep allocReport, byName map[string]*measurement) {
	fmt.Fprintf(b, "\n### Allocations per call\n\n")
	d, okD := rep.results["direct"]
	p, okP := rep.results["dataplane"]
	switch {
	case rep.cmd == "":
		fmt.Fprintf(b, "In-process benchmark: not run (-allocs-pkg is empty).\n")
	case rep.err != nil:
		fmt.Fprintf(b, "In-process benchmark: n/a (%v).\n", firstLine(rep.err.Error()))
	case !okD || !okP:
		fmt.Fprintf(b, "In-process benchmark: n/a (no direct and dataplane results in its output).\n")
	default:
		fmt.Fprintf(b, "In-process, `%s` (medians of 3 runs; the client and the fast upstream run in the benchmark's process, so the data plane's own share is the difference):\n\n", rep.cmd)
		fmt.Fprintf(b, "| BenchmarkToolsCall | allocs/op | B/op | ns/op | CPU µs/op (the process's) |\n|---|---:|---:|---:|---:|\n")
		fmt.Fprintf(b, "| direct (client → upstream) | %.0f | %.0f | %.0f | %.1f |\n", d.allocs, d.bytes, d.nsPerOp, d.cpuUs)
		fmt.Fprintf(b, "| dataplane (client → data plane → upstream) | %.0f | %.0f | %.0f | %.1f |\n", p.allocs, p.bytes, p.nsPerOp, p.cpuUs)
		fmt.Fprintf(b, "| **the data plane's own (dataplane − direct)** | **%.0f** | **%.0f** | %.0f | %.1f |\n", p.allocs-d.allocs, p.bytes-d.bytes, p.nsPerOp-d.nsPerOp, p.cpuUs-d.cpuUs)
	}
	var rows []string
	for _, name := range []string{pathDPAsync, pathDPDurable, pathDPShadow} {
		m := byName[name]
		if !m.measured() {
			continue
		}
		var objs, bytes []float64
		for _, r := range m.fixed {
			if r.haveAllocs && r.calls > 0 {
				objs = append(objs, r.mallocs/float64(r.calls))
				bytes = append(bytes, r.allocBytes/float64(r.calls))
			}
		}
		if len(objs) == 0 {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s |", name, spreadOf(objs).numText(0), spreadOf(bytes).numText(0)))
	}
	if len(rows) > 0 {
		fmt.Fprintf(b, "\nIn the running data planes at the fixed rate: the deltas of `go_memstats_mallocs_total` and `go_memstats_alloc_bytes_total` on /metrics over each window, per call "+
			"(everything the process allocated, background work included, less what one scrape allocates, measured before each window):\n\n| data plane | heap objects per call | bytes per call |\n|---|---:|---:|\n%s\n", strings.Join(rows, "\n"))
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// renderStageSection writes the per-stage budget table and each data
// plane's breakdown of the mean latency it adds.
func renderStageSection(b *strings.Builder, byName map[string]*measurement, fsync fsyncStats) {
	direct := byName[pathDirect]
	var names []string
	var inputs []*budgetInputs
	for _, v := range dpVariants {
		m := byName[v.path]
		short := strings.TrimSuffix(strings.TrimPrefix(v.path, "data plane ("), " audit)")
		names = append(names, short)
		if !m.measured() {
			inputs = append(inputs, nil)
			continue
		}
		all := merged(m)
		in := &budgetInputs{stages: all.stages, durable: v.path == pathDPDurable, fsync50: fsync.p50}
		if v.path == pathDPTraced || v.path == pathDPTraced10 {
			in.cpuShare, in.haveShare = tracingShare(byName[pathDPAsync], m)
		}
		if direct.measured() {
			d := merged(direct)
			in.other, in.haveMean = breakdown(all, d).other(), true
			in.added50, in.direct50 = all.pct(50)-d.pct(50), d.pct(50)
		}
		inputs = append(inputs, in)
	}
	fmt.Fprintf(b, "\n### Per-stage latency budget\n\n")
	fmt.Fprintf(b, "The budget of docs/performance.md (what each stage may cost at p50 for a typical 1 KiB call; this benchmark's call is smaller) beside each data plane's "+
		"figures over all its fixed-rate windows: p50 interpolated within `%s`'s doubling buckets, mean from `_sum`/`_count`. "+
		"Reported, not judged.\n\n", stageMetric)
	renderBudget(b, names, inputs)

	for _, name := range []string{pathDPAsync, pathDPDurable, pathDPShadow} {
		m := byName[name]
		if !m.measured() {
			continue
		}
		all := merged(m)
		switch {
		case all.stagesErr != nil:
			fmt.Fprintf(b, "\n#### %s: where the added latency goes\n\nn/a: %v\n", name, all.stagesErr)
		case len(all.stages) == 0:
			fmt.Fprintf(b, "\n#### %s: where the added latency goes\n\nn/a: no `%s` observations in /metrics during the windows.\n", name, stageMetric)
		case !direct.measured():
			fmt.Fprintf(b, "\n#### %s: where the added latency goes\n\nn/a: the direct path was not measured, so the added latency is unknown.\n", name)
		default:
			renderBreakdown(b, name, all.calls, breakdown(all, merged(direct)))
		}
	}
}

// renderGoals writes issue 14's goals for the data plane: the judged ones
// as PASS/FAIL lines, the others as figures with whether they were met.
func renderGoals(b *strings.Builder, byName map[string]*measurement, fsync fsyncStats, allocs allocReport, spans map[string]int) {
	direct, nginx := byName[pathDirect], byName[pathNginx]
	async, durable := byName[pathDPAsync], byName[pathDPDurable]
	fmt.Fprintf(b, "Judged (medians of the windows):\n\n")
	for _, dp := range []*measurement{async, durable} {
		if dp == nil {
			continue
		}
		name := dp.name
		if !dp.measured() || !nginx.measured() {
			fmt.Fprintf(b, "- %s CPU per call ≤ 2× nginx's: n/a (a path was not measured)\n", name)
		} else {
			d, n := dp.cpuPerCall().med, nginx.cpuPerCall().med
			fmt.Fprintf(b, "- %s CPU per call / nginx's = %.0f / %.0f µs = %s (goal ≤ 2×) → %s\n", name, d/1e3, n/1e3, ratioText(d, n), verdict(n > 0 && d <= 2*n))
		}
		if !dp.measured() || !nginx.measured() || !direct.measured() {
			fmt.Fprintf(b, "- %s added p50 ≤ nginx's added p50 + 0.25 ms: n/a (a path was not measured)\n", name)
		} else {
			d, n := dp.added(direct, 50).medDur(), nginx.added(direct, 50).medDur()
			limit := n + 250*time.Microsecond
			fmt.Fprintf(b, "- %s added p50 %s vs nginx's %s + 0.25 ms = %s (goal: at most that) → %s\n", name, signed(d), signed(n), signed(limit), verdict(d <= limit))
		}
		if !dp.measured() || !nginx.measured() || len(dp.tput) == 0 || len(nginx.tput) == 0 {
			fmt.Fprintf(b, "- %s max throughput ≥ 0.5× nginx's: n/a (a path was not measured)\n", name)
		} else {
			d, n := dp.throughput().med, nginx.throughput().med
			fmt.Fprintf(b, "- %s max throughput / nginx's = %.0f / %.0f calls/s = %s (goal ≥ 0.5×) → %s\n", name, d, n, ratioText(d, n), verdict(n > 0 && d >= 0.5*n))
		}
	}

	fmt.Fprintf(b, "\nReported, not judged (noisy on a shared 2-core VM):\n\n")
	for _, dp := range []*measurement{async, durable} {
		if dp.measured() && nginx.measured() && direct.measured() {
			d, n := dp.added(direct, 99), nginx.added(direct, 99)
			fmt.Fprintf(b, "- %s added p99 %s vs nginx's %s\n", dp.name, d.signedMsText(), n.signedMsText())
		}
	}
	for _, path := range []string{pathDPTraced, pathDPTraced10} {
		traced := byName[path]
		if !traced.measured() || !async.measured() {
			continue
		}
		share, _ := tracingShare(async, traced)
		fmt.Fprintf(b, "- %s (%s spans exported per call): CPU per call %.0f µs vs %.0f µs with tracing off (async audit) = %+.1f %% (median of the rounds' paired ratios; budget ≤ %.0f %%) → %s\n",
			path, spansPerCall(spans[path], traced), traced.cpuPerCall().med/1e3, async.cpuPerCall().med/1e3, share*100, maxTracingShare*100, met(share <= maxTracingShare))
	}
	bd, okD := allocs.results["direct"]
	bp, okP := allocs.results["dataplane"]
	if allocs.err == nil && okD && okP {
		own := bp.allocs - bd.allocs
		fmt.Fprintf(b, "- allocations per in-process tools/call, the data plane's own: %.0f (%.0f B); before: %d (%d B, %s); goal at least halved, ≤ %d → %s\n",
			own, bp.bytes-bd.bytes, allocsBefore, allocBytesBefore, allocsBeforeLabel, allocsBefore/2, met(own <= allocsBefore/2))
	}
	if !async.measured() || !durable.measured() {
		fmt.Fprintf(b, "- durable vs asynchronous audit: n/a (a data plane was not measured)\n")
		return
	}
	if len(async.tput) > 0 && len(durable.tput) > 0 {
		d, a := durable.throughput().med, async.throughput().med
		fmt.Fprintf(b, "- durable max throughput / asynchronous = %.0f / %.0f calls/s = %s (goal ≥ 0.8×) → %s\n", d, a, ratioText(d, a), met(a > 0 && d >= 0.8*a))
	}
	d, a := durable.cpuPerCall().med, async.cpuPerCall().med
	fmt.Fprintf(b, "- durable CPU per call / asynchronous = %.0f / %.0f µs = %s (goal ≤ 1.5×) → %s\n", d/1e3, a/1e3, ratioText(d, a), met(a > 0 && d <= 1.5*a))
	if fsync.err != nil {
		fmt.Fprintf(b, "- durable p50 ≤ asynchronous p50 + fsync p50: n/a (fsync not measured: %v)\n", fsync.err)
	} else {
		dp50, ap50 := durable.each(pct(50)).medDur(), async.each(pct(50)).medDur()
		fmt.Fprintf(b, "- durable p50 %s vs asynchronous p50 %s + this disk's fsync p50 %s = %s (goal: at most that) → %s\n",
			ms(dp50), ms(ap50), ms(fsync.p50), ms(ap50+fsync.p50), met(dp50 <= ap50+fsync.p50))
	}
}

// ratioText is a/b as "2.31×", or n/a.
func ratioText(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
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

// met is the word for a goal that is reported, not judged.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// ms formats a latency in milliseconds with microsecond precision.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}

func fsyncText(st fsyncStats) string {
	if st.err != nil {
		return fmt.Sprintf("n/a (%v)", st.err)
	}
	return fmt.Sprintf("p50 %s, p99 %s", ms(st.p50), ms(st.p99))
}

// tracingShare is the extra CPU per call of the traced data plane over the
// async one, as a fraction: the median over the rounds of traced / async
// − 1, each round's two windows measured one after the other (so load
// from elsewhere falls on both alike).
func tracingShare(async, traced *measurement) (float64, bool) {
	if !async.measured() || !traced.measured() {
		return 0, false
	}
	var vs []float64
	for i, r := range traced.fixed {
		if i >= len(async.fixed) {
			break
		}
		off := perCall(async.fixed[i].cpu, async.fixed[i].calls)
		if off > 0 {
			vs = append(vs, perCall(r.cpu, r.calls)/off-1)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	return spreadOf(vs).med, true
}

// spansPerCall is the spans the traced data plane exported per call over
// every measured window, or "n/a"; the warm-ups' spans count too, so it
// errs high.
func spansPerCall(spans int, traced *measurement) string {
	calls := 0
	for _, r := range slices.Concat(traced.fixed, traced.tput) {
		calls += r.calls
	}
	if spans == 0 || calls == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(spans)/float64(calls))
}
