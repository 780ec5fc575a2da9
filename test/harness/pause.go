//go:build unix

package harness

import (
	"fmt"
	"syscall"
)

// Pause sends SIGSTOP: the process keeps its sockets (peers can still
// connect, the kernel queues what they send) but runs no code, so to the
// rest of the cluster it is cut off: the way the chaos drills partition a
// node without touching the network. Resume undoes it.
func (d *Daemon) Pause() error {
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %s (pid %d): %w", d.Name, d.Pid(), err)
	}
	return nil
}

// Resume sends SIGCONT to a paused process.
func (d *Daemon) Resume() error {
	if err := d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("SIGCONT %s (pid %d): %w", d.Name, d.Pid(), err)
	}
	return nil
}

// Pause stops the node with SIGSTOP (see Daemon.Pause); it fails the test
// when the signal cannot be sent.
func (cp *ControlPlane) Pause() {
	cp.t.Helper()
	cp.t.Logf("SIGSTOP controlplane %s (pid %d)", cp.NodeID, cp.Daemon().Pid())
	if err := cp.Daemon().Pause(); err != nil {
		cp.t.Fatal(err)
	}
}

// Resume continues a paused node with SIGCONT; it fails the test when the
// signal cannot be sent.
func (cp *ControlPlane) Resume() {
	cp.t.Helper()
	cp.t.Logf("SIGCONT controlplane %s (pid %d)", cp.NodeID, cp.Daemon().Pid())
	if err := cp.Daemon().Resume(); err != nil {
		cp.t.Fatal(err)
	}
}
