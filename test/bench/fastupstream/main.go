// Command fastupstream serves the demo upstream's MCP tools fast enough that
// a proxy in front of it, not the upstream, limits a benchmark (package
// responder). test/bench/mcpbench starts it as the upstream of every path
// it measures:
//
//	go run ./test/bench/fastupstream --addr 127.0.0.1:7451 [--json]
//
// The MCP endpoint answers on every path (http://ADDR/mcp); GET /healthz
// answers 200. It listens on loopback only and has no authentication.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/test/bench/fastupstream/responder"
)

// config is the command line.
type config struct {
	addr        string
	json        bool
	maxSessions int
}

func (c config) validate() error {
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %s: a loopback IP address is required (this server has no authentication)", c.addr)
	}
	if c.maxSessions <= 0 {
		return errors.New("--max-sessions must be positive")
	}
	return nil
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:7451", "listen address (loopback only)")
	flag.BoolVar(&cfg.json, "json", false, "answer requests with application/json instead of an event stream")
	flag.IntVar(&cfg.maxSessions, "max-sessions", responder.DefaultMaxSessions, "most open MCP sessions")
	flag.Parse()
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fastupstream:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fastupstream:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	h, err := responder.New(ctx, responder.Options{JSON: cfg.json, MaxSessions: cfg.maxSessions, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
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
