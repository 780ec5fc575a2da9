// Command auditstorebench measures what the control plane's audit store
// costs as it grows, at each of -sizes stored records (default 1M and
// 10M): the Raft snapshot (its time and size), a node's start (its time)
// and a follower's catch-up. Issue 14's redesign (sealed segments with
// index files, snapshots that name sealed segments instead of carrying
// them) should keep the first two flat; -legacy measures the format before
// it (every segment's bytes in the snapshot) for comparison.
//
// It fills an audit store (internal/controlplane/auditstore) in process,
// as the state machine does from AppendAudit commands: realistic
// data-plane records (about 300 bytes each, hash-chained per data plane,
// from 8 data planes in batches of 500, as uploads arrive). Then, with the
// real code paths:
//   - snapshot: the state machine's Snapshot and Persist (raftstore.FSM)
//     into hashicorp/raft's file snapshot store, as a node takes one (the
//     sink's Close fsyncs);
//   - node start: what a control-plane node runs before it serves:
//     auditstore.Open (the sealed segments' index files and the open
//     segment's records) then raftstore.Open, whose raft.NewRaft restores
//     the latest snapshot into the state machine, with a warm page cache
//     (the files were just written: a process restart) and a cold one (the
//     files' pages dropped with posix_fadvise: a machine restart; nothing
//     else on the machine is evicted);
//   - follower catch-up: the snapshot restored into an empty node's store
//     (an InstallSnapshot without the snapshot's transfer), fetching the
//     sealed segments from the leader's store over the peer API on
//     loopback, up to -follower-max records; above it the figure is scaled
//     from the largest size measured;
//   - lagging follower: the same for a follower that holds every sealed
//     segment but the newest.
//
// The store and the snapshot live in -dir (default a new directory under
// $TMPDIR, removed afterwards): about 320 bytes per record, 3.2 GB at
// 10M (twice that with -legacy). make bench runs it as
//
//	go run ./test/bench/auditstorebench -out bench-results/auditstore.md
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// config is the command line.
type config struct {
	out         string
	dir         string
	sizes       []int
	followerMax int
	// legacy measures snapshots in the format before cluster version 8.
	legacy bool
}

func (c config) validate() error {
	if len(c.sizes) == 0 {
		return errors.New("-sizes: give at least one size")
	}
	for _, n := range c.sizes {
		if n < 1000 {
			return fmt.Errorf("-sizes: %d is too small to measure (at least 1000)", n)
		}
	}
	if c.followerMax < 0 {
		return errors.New("-follower-max must not be negative")
	}
	return nil
}

func main() {
	var cfg config
	sizes := flag.String("sizes", "1000000,10000000", "comma-separated numbers of stored records to measure at (k and M suffixes allowed)")
	flag.StringVar(&cfg.out, "out", "", "also write the Markdown report to this file")
	flag.BoolVar(&cfg.legacy, "legacy", false, "write snapshots in the format before cluster version 8 (every segment's bytes), the \"before\" of issue 14")
	flag.StringVar(&cfg.dir, "dir", "", "directory for the stores and snapshots (default: a temporary directory, removed afterwards); not tmpfs, or fsync is free")
	followerMax := flag.String("follower-max", "1M", "measure the follower catch-up (restore into an empty store) only up to this many records; larger sizes are scaled")
	flag.Parse()
	var err error
	var fm []int
	if cfg.sizes, err = parseSizes(*sizes); err == nil {
		if fm, err = parseSizes(*followerMax); err == nil && len(fm) != 1 {
			err = errors.New("-follower-max: give one size")
		}
	}
	if err == nil {
		cfg.followerMax = fm[0]
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditstorebench:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "auditstorebench:", err)
		os.Exit(1)
	}
}

// parseSizes reads "1000000,10M,500k".
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		mult := 1
		switch {
		case strings.HasSuffix(f, "M"):
			mult, f = 1_000_000, strings.TrimSuffix(f, "M")
		case strings.HasSuffix(f, "k"):
			mult, f = 1_000, strings.TrimSuffix(f, "k")
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want positive integers, optionally with k or M", s)
		}
		out = append(out, n*mult)
	}
	return out, nil
}
