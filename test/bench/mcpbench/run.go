package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/tracing/tracingtest"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// Path names, in the order they are measured and reported.
const (
	pathDirect     = "direct"
	pathNginx      = "nginx"
	pathDPAsync    = "data plane (async audit)"
	pathDPDurable  = "data plane (durable audit)"
	pathDPShadow   = "data plane (durable audit, policy rollout in shadow)"
	pathDPTraced   = "data plane (async audit, tracing on)"
	pathDPTraced10 = "data plane (async audit, tracing on, 10% sampled)"
)

// measurement is everything measured on one path.
type measurement struct {
	name    string
	skipped string // why the path was not measured; empty when it was
	// unavailable: skipped because the proxy is not installed, which the
	// report states but does not count as an error.
	unavailable bool
	fixed       []runResult // one per round
	tput        []runResult // one per throughput round
}

// setup is what the report says about the run's setup.
type setup struct {
	nginx    string
	upstream string
	// spans is how many spans each traced data plane exported, by path.
	spans    map[string]int
	fsync    fsyncStats
	allocs   allocReport
	elapsed  time.Duration
	plotPath string
	plotErr  error
}

// run builds the programs, starts everything, measures the paths and
// prints the report (and writes it to cfg.out, the plot to cfg.plot).
func run(ctx context.Context, cfg config) error {
	started := time.Now()
	if cfg.verbose {
		os.Setenv("PORTCULLIS_E2E_LOGS", "1")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	binDir, err := os.MkdirTemp("", "mcpbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(os.Stderr, "mcpbench: building controlplane, gwctl, dataplane, demoupstream, fastupstream …")
	if err := harness.BuildPrograms(binDir, "controlplane", "gwctl", "dataplane", "demoupstream"); err != nil {
		return err
	}
	fastBin := filepath.Join(binDir, "fastupstream")
	build := exec.Command("go", "build", "-o", fastBin, "./test/bench/fastupstream")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./test/bench/fastupstream: %w\n%s", err, out)
	}

	var st setup
	if cfg.allocsPkg != "" {
		fmt.Fprintf(os.Stderr, "mcpbench: allocations per call: go test -bench BenchmarkToolsCall %s …\n", cfg.allocsPkg)
		st.allocs = runAllocBench(ctx, root, cfg.allocsPkg, cfg.allocsTime)
	}
	st.fsync = measureFsync(200, 300)

	nginxBin, nginxErr := harness.FindNginx(cfg.nginx)
	if nginxErr != nil {
		fmt.Fprintf(os.Stderr, "mcpbench: WARNING: %v — the nginx rows will read n/a\n", nginxErr)
	}
	st.nginx = "nginx: n/a (" + errText(nginxErr) + ")"

	var results []*measurement
	p := harness.NewProgram(ctx, "mcpbench", os.Stderr)
	err = p.Run(func(t testing.TB) {
		var variants []dpVariant
		for _, v := range dpVariants {
			if cfg.paths[v.key] {
				variants = append(variants, v)
			}
		}
		// The traced data plane exports every call's spans over OTLP/HTTP
		// to a receiver in this process that counts and drops them.
		spans := map[string]*tracingtest.Receiver{}
		for i, v := range variants {
			if v.path == pathDPTraced || v.path == pathDPTraced10 {
				spans[v.path] = tracingtest.NewCounter(t)
				variants[i].args = append(slices.Clone(v.args), "--trace-otlp-endpoint", spans[v.path].HTTPURL())
			}
		}
		defer func() {
			st.spans = map[string]int{}
			for path, r := range spans {
				st.spans[path] = r.Count()
			}
		}()
		up := startUpstream(t, cfg.upstream, fastBin, cfg.upstreamJSON, cfg.upstreamGOGC)
		st.upstream = up.desc
		g := startGateway(t, up, variants)
		noProxy := func() []int { return nil }
		var targets []*target
		if cfg.paths["direct"] {
			targets = append(targets, newTarget(pathDirect, up.URL, toolName, "", cfg.inflight, noProxy))
		}
		if nginxErr == nil && cfg.paths["nginx"] {
			n := startNginx(t, nginxBin, up.Addr, up.health)
			targets = append(targets, newTarget(pathNginx, n.URL+"/mcp", toolName, "", cfg.inflight, n.pids))
			st.nginx = fmt.Sprintf("%s, %d worker(s) (`worker_processes auto`), `proxy_pass` over HTTP/1.1 to a keep-alive pool, `proxy_buffering off`, no access log",
				harness.NginxVersion(nginxBin), len(n.pids())-1)
		}
		for _, v := range variants {
			dp := g.dps[v.path]
			tg := newTarget(v.path, dp.URL+"/mcp", actionName, g.apiKey, cfg.inflight, func() []int { return []int{dp.Daemon().Pid()} })
			tg.metrics = dp.Metrics
			targets = append(targets, tg)
		}

		var live, shadow []*target
		byTarget := map[*target]*measurement{}
		for _, tg := range targets {
			tg.upstream = up.pids
			m := &measurement{name: tg.name}
			results = append(results, m)
			if err := tg.initialize(ctx); err != nil {
				t.Logf("%v", err)
				m.skipped = "initialize failed: " + err.Error()
				continue
			}
			byTarget[tg] = m
			if tg.name == pathDPShadow {
				// Measured alone, last: the rollout reaches every data
				// plane of the cluster once started.
				shadow = append(shadow, tg)
				continue
			}
			live = append(live, tg)
		}
		defer func() {
			for _, tg := range targets {
				tg.close()
			}
		}()
		// Rounds interleave the paths, so that load from elsewhere on the
		// machine falls on each of them alike.
		for round := range cfg.rounds {
			for _, tg := range live {
				if ctx.Err() != nil {
					return
				}
				fmt.Fprintf(os.Stderr, "mcpbench: round %d/%d: %s: %d calls/s for %s after %s warm-up …\n", round+1, cfg.rounds, tg.name, cfg.rate, cfg.duration, cfg.warmup)
				m := byTarget[tg]
				m.fixed = append(m.fixed, fixedRate(ctx, tg, cfg.rate, cfg.inflight, cfg.warmup, cfg.duration))
			}
		}
		for round := range cfg.tputRounds {
			for _, tg := range live {
				if ctx.Err() != nil {
					return
				}
				fmt.Fprintf(os.Stderr, "mcpbench: throughput %d/%d: %s: closed loop, %d workers for %s …\n", round+1, cfg.tputRounds, tg.name, cfg.workers, cfg.tputDur)
				m := byTarget[tg]
				m.tput = append(m.tput, maxThroughput(ctx, tg, cfg.workers, cfg.tputWarmup, cfg.tputDur))
			}
		}
		for _, tg := range shadow {
			g.startShadow(t, g.dps[pathDPShadow])
			m := byTarget[tg]
			for round := range cfg.rounds {
				if ctx.Err() != nil {
					return
				}
				fmt.Fprintf(os.Stderr, "mcpbench: round %d/%d: %s: %d calls/s for %s after %s warm-up …\n", round+1, cfg.rounds, tg.name, cfg.rate, cfg.duration, cfg.warmup)
				m.fixed = append(m.fixed, fixedRate(ctx, tg, cfg.rate, cfg.inflight, cfg.warmup, cfg.duration))
			}
			for range cfg.tputRounds {
				if ctx.Err() != nil {
					return
				}
				m.tput = append(m.tput, maxThroughput(ctx, tg, cfg.workers, cfg.tputWarmup, cfg.tputDur))
			}
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
		results = slices.Insert(results, i, &measurement{name: pathNginx, skipped: errText(nginxErr), unavailable: true})
	}

	if cfg.plot != "" {
		st.plotPath = cfg.plot
		st.plotErr = writePlot(cfg.plot, cfg, results)
	}
	st.elapsed = time.Since(started)
	report := renderReport(cfg, st, results)
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	if st.allocs.err != nil {
		return fmt.Errorf("allocation benchmark: %w", st.allocs.err)
	}
	if st.plotErr != nil {
		return fmt.Errorf("plot: %w", st.plotErr)
	}
	for _, m := range results {
		if m.skipped != "" && !m.unavailable {
			return fmt.Errorf("calls failed (see the report)")
		}
		for _, r := range append(slices.Clone(m.fixed), m.tput...) {
			if r.errors.total() > 0 {
				return fmt.Errorf("calls failed (see the report)")
			}
		}
	}
	return nil
}

// writePlot draws every measured path's fixed-rate latencies (all rounds
// merged) into an SVG at path.
func writePlot(path string, cfg config, results []*measurement) error {
	var series []plotSeries
	for _, m := range results {
		if m.skipped != "" || len(m.fixed) == 0 {
			continue
		}
		series = append(series, plotSeries{name: m.name, color: pathColors[m.name], hist: mergedFixed(m)})
	}
	host, _ := os.Hostname()
	svg := percentilePlot("MCP tools/call latency by percentile: direct, nginx, data plane",
		fmt.Sprintf("%d calls/s open loop, %d × %s windows per path, %s, %s", cfg.rate, cfg.rounds, cfg.duration, host, time.Now().Format("2006-01-02")), series)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(svg), 0o644)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fsyncStats is this disk's latency for a small append and fsync.
type fsyncStats struct {
	size     int
	n        int
	p50, p99 time.Duration
	err      error
}

// measureFsync times n appends of size bytes (an audit record's size),
// each followed by fsync, in the temporary directory, where the data
// planes keep their audit logs here.
func measureFsync(n, size int) fsyncStats {
	st := fsyncStats{size: size, n: n}
	dir, err := os.MkdirTemp("", "mcpbench-fsync-")
	if err != nil {
		st.err = err
		return st
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "fsync"))
	if err != nil {
		st.err = err
		return st
	}
	defer f.Close()
	buf := make([]byte, size)
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			st.err = err
			return st
		}
		if err := f.Sync(); err != nil {
			st.err = err
			return st
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	st.p50, st.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	return st
}
