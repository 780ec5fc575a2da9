// Command auditbench measures the data plane's audit log: durable records
// per second with 1, 16 and 64 concurrent writers, and the latency each
// Write adds to a call (p50/p99), with --audit-sync on (each Write waits
// for its group commit's fsync) and off (each Write waits for the write to
// the OS; fsync every 100ms), in one run. For reference it measures the
// machine's raw fsync latency (a 256-byte append and fsync, one at a time):
// a synced Write cannot beat it, and group commit is what lets many
// writers share one.
//
// The log lives in -dir (default a new directory under $TMPDIR, removed
// afterwards); on tmpfs fsync is free and the figures mean nothing. Every
// log written is checked with audit.Verify.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

func main() {
	out := flag.String("out", "", "also write the Markdown report to this file")
	dir := flag.String("dir", "", "directory for the logs (default: a temporary directory, removed afterwards)")
	duration := flag.Duration("duration", 2*time.Second, "how long each row writes")
	writers := flag.String("writers", "1,16,64", "comma-separated concurrent writer counts")
	flag.Parse()
	if err := run(*out, *dir, *duration, *writers); err != nil {
		fmt.Fprintln(os.Stderr, "auditbench:", err)
		os.Exit(1)
	}
}

func run(out, dir string, duration time.Duration, writerList string) error {
	var counts []int
	for _, s := range strings.Split(writerList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-writers %q: want positive integers", writerList)
		}
		counts = append(counts, n)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "auditbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fsync, err := rawFsync(dir, duration)
	if err != nil {
		return err
	}
	var rows []row
	for _, async := range []bool{false, true} {
		for _, n := range counts {
			r, err := measure(filepath.Join(dir, fmt.Sprintf("log-async-%v-%d", async, n)), async, n, duration)
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	}
	report := render(dir, duration, fsync, rows)
	fmt.Print(report)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// row is one measured configuration.
type row struct {
	async    bool
	writers  int
	records  int
	elapsed  time.Duration
	p50, p99 time.Duration
	bytes    int
}

// sample is a record the size of a typical call's (about 250 bytes).
func sample(i int) *auditv1.Record {
	return &auditv1.Record{
		Time:            timestamppb.Now(),
		Dataplane:       "dp-bench",
		Agent:           fmt.Sprintf("agent-%d", i%100),
		User:            "alice@example.com",
		Protocol:        "mcp",
		Method:          "tools/call",
		Upstream:        "payments",
		Tool:            "payments__send_payment",
		SnapshotVersion: 42,
		Mode:            "normal",
		Decision:        "allow",
		Policies:        []string{"payments/allow-small"},
		Outcome:         "ok",
		Latency:         durationpb.New(3 * time.Millisecond),
		UpstreamLatency: durationpb.New(2 * time.Millisecond),
		SourceIp:        "10.1.2.3",
		ArgumentsJson:   `{"amount":100,"to":"bob","memo":"[redacted]"}`,
		ResponseBytes:   512,
	}
}

// measure runs writers goroutines writing to a fresh log for duration.
func measure(dir string, async bool, writers int, duration time.Duration) (row, error) {
	l, err := audit.Open(audit.Options{Dir: dir, Async: async})
	if err != nil {
		return row{}, err
	}
	ctx := context.Background()
	lats := make([][]time.Duration, writers)
	errs := make([]error, writers)
	stop := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				r := sample(i)
				t0 := time.Now()
				if err := l.Write(ctx, r); err != nil {
					errs[w] = err
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	// Async: the records count once they are durable, at Close.
	if err := l.Close(); err != nil {
		return row{}, err
	}
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return row{}, err
		}
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	sum, err := audit.Verify(dir)
	if err != nil {
		return row{}, err
	}
	if sum.Last != uint64(len(all)) {
		return row{}, fmt.Errorf("%d writes acknowledged but the log ends at %d", len(all), sum.Last)
	}
	return row{
		async: async, writers: writers, records: len(all), elapsed: elapsed,
		p50: all[len(all)/2], p99: all[len(all)*99/100], bytes: proto.Size(sample(0)),
	}, nil
}

// rawFsync times 256-byte appends each followed by fsync, for up to
// duration or 2,000 rounds.
func rawFsync(dir string, duration time.Duration) ([]time.Duration, error) {
	f, err := os.OpenFile(filepath.Join(dir, "fsync-probe"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 256)
	var lat []time.Duration
	for stop := time.Now().Add(duration); time.Now().Before(stop) && len(lat) < 2000; {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat, nil
}

func render(dir string, duration time.Duration, fsync []time.Duration, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Audit log on the data plane (%s per row, GOMAXPROCS %d, %s)\n\n", duration, runtime.GOMAXPROCS(0), dir)
	fmt.Fprintf(&b, "Raw fsync of a 256-byte append: p50 %s, p99 %s (%d rounds).\n\n",
		ms(fsync[len(fsync)/2]), ms(fsync[len(fsync)*99/100]), len(fsync))
	b.WriteString("| --audit-sync | writers | records | durable records/s | Write p50 | Write p99 |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		mode := "true (fsync per batch)"
		if r.async {
			mode = "false (fsync every 100ms)"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %s | %s |\n", mode, r.writers, r.records,
			float64(r.records)/r.elapsed.Seconds(), ms(r.p50), ms(r.p99))
	}
	fmt.Fprintf(&b, "\nRecords are about %d bytes encoded. Records/s counts a record once it is fsynced (async rows: at Close). "+
		"Write p50/p99 is the latency the audit stage adds to a call. Every log passed audit.Verify.\n", rows[0].bytes)
	return b.String()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}
