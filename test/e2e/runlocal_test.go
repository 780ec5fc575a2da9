package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestRunLocalOutlivesTheControlPlane drives scripts/run-local, what `make
// run` runs, as the README's quick start does: once it is up, the demo
// agent's call goes through; then the control plane is stopped, and the
// script keeps the data plane and the demo upstream running, which serve
// the read-only tool, turn degraded and refuse the payment with reason
// degraded. SIGTERM then stops every process the script started.
func TestRunLocalOutlivesTheControlPlane(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "run-local")
	runDir := t.TempDir()
	dpAddr := harness.FreeAddr(t)
	log := harness.NewLogBuffer()
	d := harness.StartDaemon(t, "run-local", script, nil, []string{
		"RUN_DIR=" + runDir, "BIN=" + harness.BinDir(t),
		"RUN_API_ADDR=" + harness.FreeAddr(t), "RUN_RAFT_ADDR=" + harness.FreeAddr(t),
		"RUN_UPSTREAM_ADDR=" + harness.FreeAddr(t), "RUN_DATAPLANE_ADDR=" + dpAddr,
	}, log)
	// The script's children are this test's processes too: whatever
	// happens, none outlives it.
	pids := map[string]int{}
	t.Cleanup(func() {
		for name, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				t.Logf("%s (pid %d) still runs at the end; killing it", name, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("run-local output:\n%s", log.String())
			for _, f := range []string{"controlplane.log", "dataplane.log", "demoupstream.log"} {
				b, _ := os.ReadFile(filepath.Join(runDir, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	})
	if _, err := log.AwaitMatch(regexp.MustCompile(`Portcullis is up`), 3*time.Minute, d.Done()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"controlplane", "dataplane", "demoupstream"} {
		b, err := os.ReadFile(filepath.Join(runDir, name+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s.pid: %v", name, err)
		}
		pids[name] = pid
	}
	key, err := os.ReadFile(filepath.Join(runDir, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + dpAddr + "/mcp"
	call := func(tool string, args map[string]any) harness.ToolCall {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), harness.MCPTimeout)
		defer cancel()
		c, err := harness.CallToolAt(ctx, "dp1", endpoint, harness.CallOptions{Bearer: strings.TrimSpace(string(key))}, tool, args)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	weather := map[string]any{"city": "Oslo"}
	if c := call(actionWeather, weather); c.Err() != nil || !strings.Contains(c.Text, "Oslo") {
		t.Fatalf("weather through the quick start's gateway: %v (%q)", c.Err(), c.Text)
	}

	// Stop the control plane, as the README says.
	if err := syscall.Kill(pids["controlplane"], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := log.AwaitMatch(regexp.MustCompile(`The control plane stopped`), time.Minute, d.Done()); err != nil {
		t.Fatal(err)
	}
	if d.Exited() {
		t.Fatalf("run-local exited when the control plane stopped: %v", d.Err())
	}
	if c := call(actionWeather, weather); c.Err() != nil {
		t.Fatalf("weather with the control plane stopped: %v", c.Err())
	}
	dp := &harness.Dataplane{Name: "dp1", URL: "http://" + dpAddr}
	dp.AwaitReadyz(t, time.Minute, "degraded", func(s harness.ReadyStatus) error {
		if s.Mode != "degraded" {
			return errors.New("mode " + s.Mode)
		}
		return nil
	})
	if c := call(actionWeather, weather); c.Err() != nil {
		t.Fatalf("read-only tool in degraded mode: %v", c.Err())
	}
	if c := call(actionPayment, map[string]any{"to": "bob", "amount": 100}); !c.IsError || c.Reason != "degraded" {
		t.Fatalf("payment in degraded mode: %+v, want refused with reason degraded", c)
	}
	if d.Exited() {
		t.Fatalf("run-local exited: %v", d.Err())
	}

	// Ctrl-C's signal ends the run and every process in it.
	d.MustCleanShutdown(t)
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) outlived run-local: %v", name, pid, err)
		}
	}
}
