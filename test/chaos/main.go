// Command chaos runs the fault drills of package drills with the real
// binaries on loopback and prints one verdict line per drill:
//
//	DRILL <name>: PASS|FAIL — <invariant figures>
//
// It exits non-zero when any drill fails.
//
//	go run ./test/chaos [-drill NAME[,NAME…]] [-out FILE] [-log FILE]
//
// -out also writes the verdicts (Markdown) to FILE; the processes' logs
// and gwctl transcripts of a failed drill, and every drill's progress, go
// to -log (default: stderr).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/chaos/drills"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// config is the command line.
type config struct {
	drills []drills.Drill
	out    string
	log    string
}

func parse(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	names := fs.String("drill", "", "run only these drills (comma-separated): "+strings.Join(drills.Names(), ", "))
	fs.StringVar(&cfg.out, "out", "", "also write the verdicts as Markdown to this file")
	fs.StringVar(&cfg.log, "log", "", "write the drills' progress and failed drills' process logs here (default stderr)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *names == "" {
		cfg.drills = drills.All
		return cfg, nil
	}
	for _, n := range strings.Split(*names, ",") {
		d, ok := drills.Lookup(strings.TrimSpace(n))
		if !ok {
			return cfg, fmt.Errorf("-drill: no drill %q (have %s)", n, strings.Join(drills.Names(), ", "))
		}
		cfg.drills = append(cfg.drills, d)
	}
	return cfg, nil
}

func main() {
	cfg, err := parse(os.Args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "chaos:", err)
		}
		os.Exit(2)
	}
	ctx, cancel := harness.InterruptContext("chaos", nil)
	failed, err := run(ctx, cfg)
	cancel()
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	case failed > 0:
		fmt.Fprintf(os.Stderr, "chaos: %d drill(s) failed\n", failed)
		os.Exit(1)
	}
}

// run builds the binaries, runs each drill in turn and prints its verdict
// line; it returns how many failed.
func run(ctx context.Context, cfg config) (int, error) {
	logw := io.Writer(os.Stderr)
	if cfg.log != "" {
		f, err := os.Create(cfg.log)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		logw = f
	}
	bin, err := os.MkdirTemp("", "portcullis-chaos-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(bin)
	start := time.Now()
	if err := harness.BuildPrograms(bin, "controlplane", "gwctl", "dataplane", "demoupstream", "etcdmember"); err != nil {
		return 0, err
	}
	host, _ := os.Hostname()
	fmt.Printf("chaos: built the binaries in %s; %d drill(s) at size %q on %s\n", time.Since(start).Round(time.Millisecond), len(cfg.drills), drills.Full.Name, host)

	var lines []string
	failed := 0
	for _, d := range cfg.drills {
		if ctx.Err() != nil {
			return failed, ctx.Err()
		}
		fmt.Fprintf(logw, "\n===== drill %s: %s =====\n", d.Name, d.What)
		p := harness.NewProgram(ctx, d.Name, &stamped{w: logw, start: time.Now()})
		var v *drills.Verdict
		err := p.Run(func(t testing.TB) { v = drills.Run(t, d, drills.Full) })
		if v == nil { // a panic before the verdict existed
			v = drills.NewVerdict(d.Name, drills.Full)
			v.Finish()
		}
		line := v.Line(err == nil)
		if err != nil {
			failed++
		}
		fmt.Println(line)
		fmt.Fprintln(logw, line)
		lines = append(lines, line)
	}
	fmt.Printf("chaos: %d of %d drill(s) passed in %s\n", len(cfg.drills)-failed, len(cfg.drills), time.Since(start).Round(time.Second))
	if cfg.out != "" {
		if err := writeReport(cfg.out, host, start, lines); err != nil {
			return failed, err
		}
	}
	return failed, nil
}

// writeReport writes the verdicts as Markdown.
func writeReport(path, host string, start time.Time, lines []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Fault drills\n\n`go run ./test/chaos` on %s (%s), %s, %s.\n\n```\n",
		host, machine(), start.Format("2006-01-02 15:04 MST"), time.Since(start).Round(time.Second))
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString("```\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// machine describes the CPU count and OS.
func machine() string {
	return fmt.Sprintf("%d CPUs, %s/%s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// stamped prefixes each write with the seconds since start.
type stamped struct {
	w     io.Writer
	start time.Time
}

func (s *stamped) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(s.w, "[%7.3fs] %s", time.Since(s.start).Seconds(), p); err != nil {
		return 0, err
	}
	return len(p), nil
}
