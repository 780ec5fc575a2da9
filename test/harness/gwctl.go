package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// GwctlCeiling is the longest one gwctl run may take before the harness
// kills it; commands bound themselves with --timeout well below it.
const GwctlCeiling = 90 * time.Second

// raceReport starts what a program built with -race prints on a data race.
const raceReport = "WARNING: DATA RACE"

// Result is what one gwctl run produced.
type Result struct {
	Args    []string
	Stdout  string
	Stderr  string
	Code    int // exit code; -1 when the process could not run or was killed
	Start   time.Time
	Elapsed time.Duration
}

// OK reports exit code 0.
func (r Result) OK() bool { return r.Code == 0 }

// Err is nil for exit code 0, else an error with the exit code and stderr.
func (r Result) Err() error {
	if r.Code == 0 {
		return nil
	}
	return fmt.Errorf("gwctl %s: exit %d: %s", strings.Join(r.Args, " "), r.Code, strings.TrimSpace(r.Stderr))
}

// JSON decodes stdout into v.
func (r Result) JSON(v any) error {
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		return fmt.Errorf("gwctl %s: decode stdout %q: %w", strings.Join(r.Args, " "), r.Stdout, err)
	}
	return nil
}

func (r Result) String() string {
	s := fmt.Sprintf("$ gwctl %s\n  → exit %d in %s", strings.Join(r.Args, " "), r.Code, r.Elapsed.Round(time.Millisecond))
	if e := strings.TrimSpace(r.Stderr); e != "" {
		s += "\n  stderr: " + strings.ReplaceAll(e, "\n", "\n          ")
	}
	return s
}

// RunGwctl runs gwctl with args in an environment without any inherited
// GWCTL_* variable plus env ("KEY=VALUE" entries). It never touches a
// testing.T, so it may run on any goroutine; ctx (and GwctlCeiling) bound
// the run.
func RunGwctl(ctx context.Context, bin string, env []string, args ...string) Result {
	ctx, cancel := context.WithTimeout(ctx, GwctlCeiling)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = sysProcAttr()
	r := Result{Args: args, Start: time.Now()}
	err := cmd.Run()
	r.Elapsed = time.Since(r.Start)
	r.Stdout, r.Stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += fmt.Sprintf("\nharness: gwctl did not run to completion: %v", err)
	}
	return r
}

// cleanEnv is this process's environment without GWCTL_* variables, so that
// the developer's own settings never leak into a test.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GWCTL_") {
			out = append(out, kv)
		}
	}
	return out
}

// Gwctl runs gwctl (see RunGwctl) and records the run in the test's
// transcript, which is logged if the test fails. It does not judge the
// exit code and is safe to call from any goroutine of the test.
func Gwctl(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	tr := transcriptOf(t)
	bin, err := binPath("gwctl")
	if err != nil {
		t.Error(err)
		return Result{Args: args, Code: -1, Stderr: err.Error(), Start: time.Now()}
	}
	r := RunGwctl(context.Background(), bin, env, args...)
	tr.add(r)
	if strings.Contains(r.Stderr, raceReport) {
		t.Errorf("gwctl %s reported a data race:\n%s", strings.Join(args, " "), r.Stderr)
	}
	return r
}

// MustGwctl runs gwctl and fails the test unless it exits 0; it returns the
// result. Call it from the test's goroutine only.
func MustGwctl(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	r := Gwctl(t, env, args...)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// GwctlJSON runs gwctl with "-o json" appended, fails the test unless it
// exits 0, and decodes stdout into v.
func GwctlJSON(t testing.TB, env []string, v any, args ...string) {
	t.Helper()
	r := MustGwctl(t, env, append(args, "-o", "json")...)
	if err := r.JSON(v); err != nil {
		t.Fatal(err)
	}
}

// transcript is the list of gwctl runs of one test.
type transcript struct {
	start time.Time
	mu    sync.Mutex
	lines []string
}

var transcripts sync.Map // testing.TB → *transcript

func transcriptOf(t testing.TB) *transcript {
	if tr, ok := transcripts.Load(t); ok {
		return tr.(*transcript)
	}
	tr, loaded := transcripts.LoadOrStore(t, &transcript{start: time.Now()})
	if !loaded {
		t.Cleanup(func() {
			transcripts.Delete(t)
			if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
				tr := tr.(*transcript)
				tr.mu.Lock()
				defer tr.mu.Unlock()
				t.Logf("=== gwctl transcript (%d runs) ===\n%s\n=== end of gwctl transcript ===", len(tr.lines), strings.Join(tr.lines, "\n"))
			}
		})
	}
	return tr.(*transcript)
}

func (tr *transcript) add(r Result) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.lines = append(tr.lines, fmt.Sprintf("[+%6.3fs] %s", r.Start.Sub(tr.start).Seconds(), r))
}
