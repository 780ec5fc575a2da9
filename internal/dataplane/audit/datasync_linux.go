package audit

import (
	"errors"
	"os"
	"syscall"
)

// dataSync flushes f's data and the metadata needed to read it back (its
// size, the blocks it uses) to the disk: fdatasync(2), which skips the
// timestamps an fsync would also write. An append that grows the file
// still has its new size written, so a record is as durable as with
// fsync, at a cheaper price.
func dataSync(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return f.Sync()
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if !errors.Is(serr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		// Closed meanwhile (a rotation): Sync reports it as os.ErrClosed.
		return f.Sync()
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
