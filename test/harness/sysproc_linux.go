package harness

import "syscall"

// sysProcAttr makes the kernel kill a child when the test binary dies (for
// example on a go test -timeout panic), so no daemon outlives the run even
// when the cleanups never get to run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
