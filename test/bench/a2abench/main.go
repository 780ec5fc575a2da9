// Command a2abench measures A2A SendMessage latency and throughput on
// four paths to the same agent, side by side in one run: called directly,
// through nginx (proxy_pass with a keep-alive upstream pool) and through
// the Portcullis data plane with its full pipeline (authentication, Cedar
// on the remote agent, task-id wrapping, audit), once with asynchronous
// and once with durable audit. The agent is the test A2A agent
// (test/a2aagent: a server of the official Go SDK); everything runs on
// loopback with the real binaries (test/harness).
//
// For each path it reports p50/p90/p99/max at a fixed request rate, from
// a constant-rate open-loop generator that times each call from its
// intended send time (no coordinated omission) into an HDR histogram, then
// the maximum throughput of a closed loop of workers, and the CPU time of
// the proxy. It compares the data plane's added p99 and throughput with
// nginx's against the same goals as the MCP benchmark (mcpbench): added
// p99 ≤ 1.5× nginx's, throughput ≥ 0.7× nginx's (PASS/FAIL lines, never a
// failing exit).
//
//	go run ./test/bench/a2abench -out bench-results/a2a.md
//
// nginx comes from PATH or /usr/sbin (scripts/ensure-nginx installs it);
// without it the nginx row reads n/a. The exit status is non-zero only
// when the benchmark could not run or a call failed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
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
	flag.BoolVar(&cfg.verbose, "v", false, "print the processes' logs at the end")
	flag.Parse()
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "a2abench:", err)
		os.Exit(2)
	}
	ctx, cancel := harness.InterruptContext("a2abench", killNginxWorkers)
	err := run(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "a2abench:", err)
		os.Exit(1)
	}
}
