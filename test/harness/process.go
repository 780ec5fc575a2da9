package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LogBuffer collects a process's output. It is safe for concurrent use and
// outlives restarts of the process, so a test's log shows every run.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at the next write
}

// NewLogBuffer returns an empty buffer.
func NewLogBuffer() *LogBuffer { return &LogBuffer{changed: make(chan struct{})} }

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AwaitMatch waits until the output matches re and returns the submatches
// of the first match. It gives up after timeout or when stop is closed (the
// process exited); a nil stop never closes.
func (b *LogBuffer) AwaitMatch(re *regexp.Regexp, timeout time.Duration, stop <-chan struct{}) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		m := re.FindStringSubmatch(b.buf.String())
		ch := b.changed
		b.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-ch:
		case <-stop:
			if m := re.FindStringSubmatch(b.String()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("the process exited before its log matched %q", re)
		case <-deadline.C:
			return nil, fmt.Errorf("log did not match %q within %s", re, timeout)
		}
	}
}

// Daemon is one run of a long-lived program.
type Daemon struct {
	Name string
	Log  *LogBuffer

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // set before done is closed
}

var (
	liveMu sync.Mutex
	live   = map[*Daemon]bool{}
)

// StartDaemon starts bin with args and env (added to a copy of this
// process's environment) and sends its stdout and stderr to log. The daemon
// is killed when the test ends if it still runs then.
func StartDaemon(t testing.TB, name, bin string, args, env []string, log *LogBuffer) *Daemon {
	t.Helper()
	d, err := startDaemon(name, bin, args, env, log)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if !d.Exited() {
			d.Kill()
		}
	})
	return d
}

func startDaemon(name, bin string, args, env []string, log *LogBuffer) (*Daemon, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(log, "--- harness: %s starting at %s: %s %q\n", name, time.Now().Format("15:04:05.000"), bin, args)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &Daemon{Name: name, Log: log, cmd: cmd, done: make(chan struct{})}
	liveMu.Lock()
	live[d] = true
	liveMu.Unlock()
	go func() {
		err := cmd.Wait()
		d.waitErr = err
		fmt.Fprintf(log, "--- harness: %s (pid %d) exited at %s: %v\n", name, cmd.Process.Pid, time.Now().Format("15:04:05.000"), exitText(err))
		liveMu.Lock()
		delete(live, d)
		liveMu.Unlock()
		close(d.done)
	}()
	return d, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Pid is the process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Done is closed when the process has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Exited reports whether the process has exited.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error (nil for exit status 0); only meaningful
// once Exited.
func (d *Daemon) Err() error {
	<-d.done
	return d.waitErr
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (d *Daemon) Kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; then
// it kills it. It returns the exit error, or an error saying the process
// had to be killed.
func (d *Daemon) Stop(timeout time.Duration) error {
	if d.Exited() {
		return d.waitErr
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.done:
		return d.waitErr
	case <-t.C:
		d.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", d.Name, timeout)
	}
}

// MustCleanShutdown stops the daemon with SIGTERM and fails the test unless
// it exits with status 0 within 15 seconds.
func (d *Daemon) MustCleanShutdown(t testing.TB) {
	t.Helper()
	if d.Exited() {
		t.Errorf("%s: already exited before the clean shutdown: %v", d.Name, exitText(d.waitErr))
		return
	}
	if err := d.Stop(15 * time.Second); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("%s: unclean shutdown: %v", d.Name, err)
		} else {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
}

// killLeftovers kills every daemon still running and returns how many there
// were. Main calls it after the tests: a leftover is a harness bug.
func killLeftovers() int {
	liveMu.Lock()
	var ds []*Daemon
	for d := range live {
		ds = append(ds, d)
	}
	liveMu.Unlock()
	for _, d := range ds {
		fmt.Fprintf(os.Stderr, "harness: %s (pid %d) still running after the tests; killing it\n", d.Name, d.Pid())
		d.Kill()
	}
	return len(ds)
}
