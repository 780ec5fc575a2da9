// Command gwctl is the operator CLI of Portcullis.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/portcullis-gw/portcullis/internal/gwctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := gwctl.Run(ctx, gwctl.NewRootCommand(os.Stdin, os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}
