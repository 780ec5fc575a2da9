// Command mcpbench measures MCP tools/call latency, CPU and throughput on
// four paths to the same upstream, side by side in one run: called
// directly, through nginx (proxy_pass with a keep-alive upstream pool) and
// through the Portcullis data plane with its full pipeline
// (authentication, Cedar, schema validation, audit), once with
// asynchronous audit (--audit-sync=false) and once with durable audit (the
// default: a call is answered once its record is fsynced), and durable
// again while a policy rollout is in shadow, whose stage table shows what
// shadow evaluation costs beside one decision. It starts
// everything on loopback with the real binaries (test/harness): a one-node
// control plane, the upstream, one data plane per audit mode and nginx.
// The upstream is test/bench/fastupstream, fast enough that the proxy, not
// the upstream, is what limits each path (-upstream demo uses the Go SDK
// demo upstream instead).
//
// For each path it runs -rounds fixed-rate windows, interleaved across the
// paths so that a burst of load from elsewhere on the machine hits them
// alike. Each window is a constant-rate open-loop generator that times
// each call from its intended send time (no coordinated omission) into an
// HDR histogram, and reads the proxy's CPU time from /proc. It reports the
// median and spread over the windows of p50/p99, the p50 and p99 added
// over the direct path in the same round, and CPU per call; then the
// maximum throughput of a closed loop of workers (-tput-rounds runs). For
// each data plane it reads its /metrics at the start and end of each
// window: the pipeline stages' own times (portcullis_dataplane_stage_seconds),
// printed beside the per-stage latency budget of docs/performance.md, and
// the Go runtime's allocation counters. It runs the in-process Go
// benchmark of test/bench/callbench for allocations per call, measures
// this disk's fsync latency, draws the HDR percentile distributions of
// every path into an SVG (-plot), and judges the goals of issue 14 (PASS/FAIL
// lines, never a failing exit).
//
//	go run ./test/bench/mcpbench -out bench-results/mcp.md -plot bench-results/mcp-latency.svg
//
// nginx comes from PATH or /usr/sbin (scripts/ensure-nginx installs it);
// without it the nginx rows read n/a. The exit status is non-zero only when
// the benchmark could not run or a call failed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// config is the command line.
type config struct {
	out          string
	plot         string
	rate         int
	rounds       int
	warmup       time.Duration
	duration     time.Duration
	inflight     int
	workers      int
	tputRounds   int
	tputWarmup   time.Duration
	tputDur      time.Duration
	nginx        string
	paths        map[string]bool
	upstream     string
	upstreamJSON bool
	upstreamGOGC string
	allocsPkg    string
	allocsTime   string
	verbose      bool
}

func (c config) validate() error {
	switch {
	case c.rate <= 0:
		return errors.New("-rate must be positive")
	case c.duration <= 0 || c.tputDur <= 0:
		return errors.New("-duration and -tput-duration must be positive")
	case c.warmup < 0 || c.tputWarmup < 0:
		return errors.New("warm-up times must not be negative")
	case c.inflight <= 0 || c.workers <= 0:
		return errors.New("-max-inflight and -workers must be positive")
	case c.rounds <= 0 || c.tputRounds <= 0:
		return errors.New("-rounds and -tput-rounds must be positive")
	case c.upstream != upstreamFast && c.upstream != upstreamDemo:
		return fmt.Errorf("-upstream %q: want %s or %s", c.upstream, upstreamFast, upstreamDemo)
	case c.upstreamJSON && c.upstream != upstreamFast:
		return errors.New("-upstream-json needs -upstream fast")
	}
	known := []string{"direct", "nginx"}
	for _, v := range dpVariants {
		known = append(known, v.key)
	}
	for p := range c.paths {
		if !slices.Contains(known, p) {
			return fmt.Errorf("-paths: unknown path %q (want dataplane or one of %s)", p, strings.Join(known, ", "))
		}
	}
	return nil
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "", "also write the Markdown report to this file")
	flag.StringVar(&cfg.plot, "plot", "", "write an SVG of the latency percentile distributions (all fixed-rate windows of each path) to this file")
	flag.IntVar(&cfg.rate, "rate", 300, "fixed request rate (calls/s) of the latency runs; keep it well below every path's maximum throughput")
	flag.IntVar(&cfg.rounds, "rounds", 3, "fixed-rate windows per path, interleaved across the paths")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "warm-up at the fixed rate before each window (not recorded)")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured time of each fixed-rate window")
	flag.IntVar(&cfg.inflight, "max-inflight", 256, "most calls in flight in the fixed-rate runs (later calls wait, and that wait counts)")
	flag.IntVar(&cfg.workers, "workers", 32, "closed-loop workers of the maximum-throughput runs")
	flag.IntVar(&cfg.tputRounds, "tput-rounds", 3, "maximum-throughput runs per path, interleaved across the paths")
	flag.DurationVar(&cfg.tputWarmup, "tput-warmup", time.Second, "warm-up of each maximum-throughput run")
	flag.DurationVar(&cfg.tputDur, "tput-duration", 2*time.Second, "measured time of each maximum-throughput run")
	flag.StringVar(&cfg.upstream, "upstream", upstreamFast, "the upstream every path reaches: fast (test/bench/fastupstream) or demo (test/demoupstream, Go MCP SDK)")
	flag.BoolVar(&cfg.upstreamJSON, "upstream-json", false, "the fast upstream answers with JSON instead of event streams")
	flag.StringVar(&cfg.upstreamGOGC, "upstream-gogc", "", "GOGC of the upstream process (e.g. 400 or off; default: Go's)")
	flag.StringVar(&cfg.allocsPkg, "allocs-pkg", "./test/bench/callbench", "package of BenchmarkToolsCall (allocations per in-process call); empty skips it")
	flag.StringVar(&cfg.allocsTime, "allocs-benchtime", "2000x", "-benchtime of BenchmarkToolsCall (run with -count 3)")
	flag.StringVar(&cfg.nginx, "nginx", "", "nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
	paths := flag.String("paths", "direct,nginx,dataplane", "paths to measure, comma-separated: direct, nginx, dataplane-async, dataplane-durable, dataplane-shadow, dataplane-traced, dataplane-traced-10; dataplane means all five")
	flag.BoolVar(&cfg.verbose, "v", false, "print the processes' logs and the gwctl transcript at the end")
	flag.Parse()
	cfg.paths = map[string]bool{}
	for _, p := range strings.Split(*paths, ",") {
		switch p = strings.TrimSpace(p); p {
		case "dataplane":
			for _, v := range dpVariants {
				cfg.paths[v.key] = true
			}
		default:
			cfg.paths[p] = true
		}
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "mcpbench:", err)
		os.Exit(2)
	}

	ctx, cancel := harness.InterruptContext("mcpbench", killNginxWorkers)

	err := run(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpbench:", err)
		os.Exit(1)
	}
}
