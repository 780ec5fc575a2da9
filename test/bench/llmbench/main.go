// Command llmbench measures what the data plane adds to a streamed model
// completion: the time to the first token and the latency of each chunk,
// on three paths to the same fake provider (test/fakellm), side by side in
// one run — called directly, through nginx (proxy_pass, proxy_buffering
// off) and through the Portcullis data plane with its full pipeline
// (authentication, budget reservation, Cedar, durable audit before the
// stream's last event, usage accounting).
//
// The provider streams Chat Completions chunks a fixed interval apart and
// stamps each with the time it sent it (same machine, same clock), so the
// client measures each chunk's one-way latency exactly; time to first
// token is from sending the request to the first content chunk. Streams run
// one at a time, so the figures are the path's own, not a queue's.
//
//	go run ./test/bench/llmbench -out bench-results/llm.md
//
// nginx comes from PATH or /usr/sbin (scripts/ensure-nginx installs it);
// without it the nginx row reads n/a. The exit status is non-zero only
// when the benchmark could not run or a stream failed.
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
	out     string
	streams int
	chunks  int
	gap     time.Duration
	warmup  int
	nginx   string
	verbose bool
}

func (c config) validate() error {
	switch {
	case c.streams <= 0 || c.chunks <= 1:
		return errors.New("-streams must be positive and -chunks above 1")
	case c.gap < 0 || c.warmup < 0:
		return errors.New("-gap and -warmup must not be negative")
	}
	return nil
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "", "also write the Markdown report to this file")
	flag.IntVar(&cfg.streams, "streams", 100, "measured streams per path")
	flag.IntVar(&cfg.chunks, "chunks", 40, "content chunks per stream")
	flag.DurationVar(&cfg.gap, "gap", 2*time.Millisecond, "the provider's pause between chunks")
	flag.IntVar(&cfg.warmup, "warmup", 10, "streams per path before measuring (not recorded)")
	flag.StringVar(&cfg.nginx, "nginx", "", "nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
	flag.BoolVar(&cfg.verbose, "v", false, "print the processes' logs and the gwctl transcript at the end")
	flag.Parse()
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "llmbench:", err)
		os.Exit(2)
	}
	ctx, cancel := harness.InterruptContext("llmbench", killNginxWorkers)
	err := run(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "llmbench:", err)
		os.Exit(1)
	}
}
