package harness

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// InterruptContext is the context of a benchmark or drill program (name
// labels its messages): the first SIGINT or SIGTERM cancels it, so the
// run's cleanups stop every process; a second signal, or cleanups still
// running 30 s later, kill every daemon outright (plus whatever extraKill,
// if set, kills and counts) and exit with status 130.
func InterruptContext(name string, extraKill func() int) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintf(os.Stderr, "%s: interrupted; stopping (again to kill at once)\n", name)
		cancel()
		select {
		case <-sigs:
		case <-time.After(30 * time.Second):
		}
		n := KillDaemons()
		if extraKill != nil {
			n += extraKill()
		}
		fmt.Fprintf(os.Stderr, "%s: killed %d process(es)\n", name, n)
		os.Exit(130)
	}()
	return ctx, cancel
}
