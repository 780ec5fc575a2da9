// Command failoverbench measures leader failover of the control plane: the
// time from kill -9 of the Raft leader to the first config write the
// cluster accepts again. It starts a real three-node control plane on
// loopback (test/harness: the built binaries, TLS, mutual-TLS Raft), runs a
// steady write workload against every node, kills the leader with SIGKILL,
// times the outage as a client sees it, restarts the killed node from its
// data dir and repeats. It does this once with the control plane's default
// Raft timeouts (what an operator runs) and once with the short timeouts
// the end-to-end tests use, and compares the worst round with the goal of
// issue 7 (failover ≤ 3 s; a PASS/FAIL line, never a failing exit).
//
//	go run ./test/bench/failoverbench -out bench-results/failover.md
//
// The workload is an open loop: every -interval one CreateAgent call (a new
// small resource) goes to the next node in turn, each a single attempt
// with no client retry, so the client's own backoff does not inflate the
// figure. A follower forwards a write to the leader. The failover time of a
// round is from just before the SIGKILL to the acknowledgement of the first
// write that was sent after the kill; writes in flight at the kill are not
// counted, because one of them may have been committed before it.
//
// The exit status is non-zero only when the benchmark could not run (the
// cluster did not come back, say).
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

// goal is issue 7's failover goal.
const goal = 3 * time.Second

// config is the command line.
type config struct {
	out      string
	rounds   int
	interval time.Duration
	timeout  time.Duration // per write
	timings  []timing
}

func (c config) validate() error {
	switch {
	case c.rounds <= 0:
		return errors.New("-rounds must be positive")
	case c.interval <= 0 || c.timeout <= 0:
		return errors.New("-interval and -write-timeout must be positive")
	case len(c.timings) == 0:
		return errors.New("-timing: name at least one of default, test")
	}
	return nil
}

// timing is one set of Raft timeouts the cluster runs with.
type timing struct {
	key   string
	label string
	args  []string // controlplane flags; nil leaves the program's defaults
}

func timings() []timing {
	return []timing{
		{
			key:   "default",
			label: "control-plane defaults (heartbeat 1s, election 1s, leader lease 500ms)",
			args:  nil,
		},
		{
			key:   "test",
			label: "test timings (heartbeat 300ms, election 300ms, leader lease 300ms; test/harness)",
			args:  slices.Clone(harness.RaftTimingArgs),
		},
	}
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "", "also write the Markdown report to this file")
	flag.IntVar(&cfg.rounds, "rounds", 5, "leader kills per Raft timing")
	flag.DurationVar(&cfg.interval, "interval", 20*time.Millisecond, "time between two writes of the workload (round robin over the nodes)")
	flag.DurationVar(&cfg.timeout, "write-timeout", 5*time.Second, "bound of one write; a write not answered by then counts as failed")
	which := flag.String("timing", "default,test", "Raft timings to measure, comma-separated: default (the control plane's defaults), test (test/harness's short timeouts)")
	flag.Parse()
	for _, k := range strings.Split(*which, ",") {
		k = strings.TrimSpace(k)
		i := slices.IndexFunc(timings(), func(t timing) bool { return t.key == k })
		if i < 0 {
			fmt.Fprintf(os.Stderr, "failoverbench: -timing: unknown timing %q (want default or test)\n", k)
			os.Exit(2)
		}
		cfg.timings = append(cfg.timings, timings()[i])
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "failoverbench:", err)
		os.Exit(2)
	}

	ctx, cancel := harness.InterruptContext("failoverbench", nil)

	err := run(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "failoverbench:", err)
		os.Exit(1)
	}
}
