// Command a2aagent runs the test A2A agent of package agent on its own,
// for trying the gateway's A2A brokering by hand and for end-to-end tests
// and benchmarks:
//
//	go run ./test/a2aagent --addr 127.0.0.1:7460 [--token TOKEN] [--legacy] [--card-path PATH]
//
// Its JSON-RPC endpoint is http://ADDR/rpc and its card is served at
// /.well-known/agent-card.json (or --card-path); see package agent for
// the behaviour and the control endpoints. Every flag can also be set from
// A2AAGENT_<FLAG> (A2AAGENT_TOKEN keeps the token out of the process
// list).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/internal/envflag"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/test/a2aagent/agent"
)

const envPrefix = "A2AAGENT"

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "a2aagent:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var addr, logLevel, logFormat string
	var opts agent.Options
	cmd := &cobra.Command{
		Use:           "a2aagent",
		Short:         "Run the test A2A agent (the official Go SDK's server)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envflag.Apply(cmd.Flags(), envPrefix, nil); err != nil {
				return err
			}
			logger, err := logging.New(os.Stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			opts.Logger = logger
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, addr, opts, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:7460", "listen address")
	f.StringVar(&opts.Token, "token", "", "refuse requests without `Authorization: Bearer <this token>`")
	f.BoolVar(&opts.Legacy, "legacy", false, "speak A2A 0.3 (the SDK's compatibility layer) instead of 1.0")
	f.StringVar(&opts.CardPath, "card-path", "", "serve the card at this path (default /.well-known/agent-card.json)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	envflag.Annotate(f, envPrefix)
	return cmd
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, addr string, opts agent.Options, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: agent.New(base, opts).Handler(), ReadHeaderTimeout: 10 * time.Second}
	logger.InfoContext(ctx, "a2a agent serving", slog.String("rpc", base+agent.RPCPath), slog.Bool("legacy", opts.Legacy),
		slog.Bool("require_token", opts.Token != ""))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
