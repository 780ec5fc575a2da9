package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
)

// BuildPrograms is Main's build step for programs that are not tests (the
// benchmarks under test/bench): it compiles programs (see Main) into dir
// and makes them available to Bin and everything that starts them. Call it
// once, before starting any process.
func BuildPrograms(dir string, programs ...string) error {
	if err := build(dir, programs); err != nil {
		return err
	}
	binMu.Lock()
	defer binMu.Unlock()
	binDir = dir
	built = map[string]bool{}
	for _, p := range programs {
		built[p] = true
	}
	return nil
}

// KillDaemons kills every process started through this package that still
// runs and returns how many there were: the last resort of a program that
// must exit now (on a second Ctrl-C, say) without running its cleanups.
func KillDaemons() int { return killLeftovers() }

// Program lets a program that is not a test use the harness, whose
// functions take a testing.TB: it implements the parts of testing.TB the
// harness uses (logging, failing, Cleanup, TempDir, Context). Run calls a
// function with it as a test runner would call a test: on its own
// goroutine, FailNow (Fatal, Fatalf) ends that goroutine, and the cleanups
// then run in reverse order. Skip, Setenv, Chdir, Attr and ArtifactDir are
// not supported and panic.
//
// As with testing.T, call FailNow only from the goroutine Run started;
// everything else is safe for concurrent use.
type Program struct {
	testing.TB // nil: only to satisfy the interface's unexported method

	name string
	out  io.Writer
	ctx  context.Context

	mu       sync.Mutex
	failed   bool
	cleanups []func()
	tempDirs []string
}

var _ testing.TB = (*Program)(nil)

// NewProgram returns a Program named name that logs to out and whose
// Context is ctx.
func NewProgram(ctx context.Context, name string, out io.Writer) *Program {
	return &Program{name: name, out: out, ctx: ctx}
}

// Run calls f with p on a new goroutine, waits for it to return or to call
// FailNow, runs the registered cleanups (last registered first) and
// removes the temporary directories. It returns an error when p failed. A
// panic in f is reported as a failure after the cleanups have run.
func (p *Program) Run(f func(t testing.TB)) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				p.Errorf("panic: %v", r)
			}
		}()
		f(p)
	}()
	<-done
	p.runCleanups()
	if p.Failed() {
		return fmt.Errorf("%s failed", p.name)
	}
	return nil
}

func (p *Program) runCleanups() {
	for {
		p.mu.Lock()
		n := len(p.cleanups)
		if n == 0 {
			dirs := p.tempDirs
			p.tempDirs = nil
			p.mu.Unlock()
			for _, d := range dirs {
				_ = os.RemoveAll(d)
			}
			return
		}
		fn := p.cleanups[n-1]
		p.cleanups = p.cleanups[:n-1]
		p.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					p.Errorf("cleanup panicked: %v", r)
				}
			}()
			fn()
		}()
	}
}

// Cleanup registers fn to run when Run ends.
func (p *Program) Cleanup(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, fn)
}

// Log prints args to the program's output.
func (p *Program) Log(args ...any) { fmt.Fprintln(p.out, args...) }

// Logf prints a formatted line to the program's output.
func (p *Program) Logf(format string, args ...any) {
	fmt.Fprintf(p.out, format+"\n", args...)
}

// Error logs args and marks p failed.
func (p *Program) Error(args ...any) { p.Log(args...); p.Fail() }

// Errorf logs a formatted line and marks p failed.
func (p *Program) Errorf(format string, args ...any) { p.Logf(format, args...); p.Fail() }

// Fatal is Error then FailNow.
func (p *Program) Fatal(args ...any) { p.Error(args...); p.FailNow() }

// Fatalf is Errorf then FailNow.
func (p *Program) Fatalf(format string, args ...any) { p.Errorf(format, args...); p.FailNow() }

// Fail marks p failed.
func (p *Program) Fail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = true
}

// FailNow marks p failed and ends the calling goroutine, which must be the
// one Run started.
func (p *Program) FailNow() {
	p.Fail()
	runtime.Goexit()
}

// Failed reports whether p failed.
func (p *Program) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Helper does nothing.
func (p *Program) Helper() {}

// Name is the name given to NewProgram.
func (p *Program) Name() string { return p.name }

// Skipped is always false.
func (p *Program) Skipped() bool { return false }

// Context is the context given to NewProgram.
func (p *Program) Context() context.Context { return p.ctx }

// Output is the program's output.
func (p *Program) Output() io.Writer { return p.out }

// TempDir creates a new temporary directory, removed when Run ends. It
// fails p when the directory cannot be created.
func (p *Program) TempDir() string {
	d, err := os.MkdirTemp("", "portcullis-"+p.name+"-")
	if err != nil {
		p.Fatalf("TempDir: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tempDirs = append(p.tempDirs, d)
	return d
}
