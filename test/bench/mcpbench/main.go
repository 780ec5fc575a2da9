// Command mcpbench measures MCP tools/call latency and throughput on four
// paths to the same demo upstream, side by side in one run: called
// directly, through nginx (proxy_pass with a keep-alive upstream pool) and
// through the Portcullis data plane with its full pipeline
// (authentication, Cedar, schema validation, audit), once with
// asynchronous audit (--audit-sync=false) and once with durable audit (the
// default: a call is answered once its record is fsynced), and durable
// again while a policy rollout is in shadow, whose stage table shows what
// shadow evaluation costs beside one decision. It starts
// everything on loopback with the real binaries (test/harness): a one-node
// control plane, the demo upstream, one data plane per audit mode and
// nginx.
//
// For each path it reports p50/p90/p99/max at a fixed request rate, from
// a constant-rate open-loop generator that times each call from its
// intended send time (no coordinated omission) into an HDR histogram, then
// the maximum throughput of a closed loop of workers, and the CPU time and
// peak RSS of the proxy process. For each data plane it splits the mean
// latency it adds into its pipeline stages' own times, from the
// portcullis_dataplane_stage_seconds histogram on its /metrics, scraped at
// the start and end of the fixed-rate window. It compares the data plane's
// added p99 and throughput with nginx's, and durable with asynchronous
// audit, against the goals of issue 7 (PASS/FAIL lines, never a failing
// exit), with this machine's fsync p99 for reference.
//
//	go run ./test/bench/mcpbench -out bench-results/mcp.md
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
	out        string
	rate       int
	warmup     time.Duration
	duration   time.Duration
	inflight   int
	workers    int
	tputWarmup time.Duration
	tputDur    time.Duration
	nginx      string
	paths      map[string]bool
	verbose    bool
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
	flag.IntVar(&cfg.rate, "rate", 200, "fixed request rate (calls/s) of the latency runs; keep it well below every path's maximum throughput")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "warm-up at the fixed rate before measuring (not recorded)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time at the fixed rate, per path")
	flag.IntVar(&cfg.inflight, "max-inflight", 256, "most calls in flight in the fixed-rate runs (later calls wait, and that wait counts)")
	flag.IntVar(&cfg.workers, "workers", 32, "closed-loop workers of the maximum-throughput runs")
	flag.DurationVar(&cfg.tputWarmup, "tput-warmup", time.Second, "warm-up of each maximum-throughput run")
	flag.DurationVar(&cfg.tputDur, "tput-duration", 3*time.Second, "measured time of each maximum-throughput run")
	flag.StringVar(&cfg.nginx, "nginx", "", "nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
	paths := flag.String("paths", "direct,nginx,dataplane", "paths to measure, comma-separated: direct, nginx, dataplane-async, dataplane-durable, dataplane-shadow; dataplane means all three")
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
