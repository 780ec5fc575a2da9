// Command demoupstream runs the demo MCP server of package demo on its own,
// for trying the gateway by hand and for end-to-end tests:
//
//	go run ./test/demoupstream --addr 127.0.0.1:7450 [--require-bearer TOKEN] [--stateless] [--event-store] [--trace-otlp-endpoint URL]
//
// The MCP endpoint answers on every path (use http://ADDR/mcp); GET /calls
// lists the tools/call requests it received; GET /state the resources
// sessions subscribed to and the wait calls cancelled; POST
// /admin/resources/updated with {"uri": "…"} tells subscribers the resource
// changed; POST /admin/tools/<name> with
// {"description": "…"} and/or {"inputSchema": {…}} changes a tool's
// definition while it runs (a "rug pull" for drift tests; {} restores it). Every flag can also be set
// from DEMOUPSTREAM_<FLAG> (DEMOUPSTREAM_REQUIRE_BEARER keeps the token out
// of the process list).
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
	"path/filepath"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/envflag"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/tracing"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
	"github.com/spf13/cobra"
)

const envPrefix = "DEMOUPSTREAM"

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "demoupstream:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var addr, logLevel, logFormat string
	var opts demo.Options
	var traceCfg tracing.Config
	cmd := &cobra.Command{
		Use:           "demoupstream",
		Short:         "Run the demo MCP upstream server",
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
			if err := traceCfg.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			traces, err := tracing.New(ctx, traceCfg, tracing.Options{Service: "demo-upstream", Instance: addr, Logger: logger})
			if err != nil {
				return err
			}
			defer func() {
				flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = traces.Shutdown(flushCtx)
			}()
			opts.Tracer = traces.Tracer("github.com/portcullis-gw/portcullis/test/demoupstream")
			return run(ctx, addr, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:7450", "listen address")
	f.StringVar(&opts.RequireBearer, "require-bearer", "", "refuse MCP requests without `Authorization: Bearer <this token>`")
	f.BoolVar(&opts.Stateless, "stateless", false, "serve without sessions (the SDK's stateless mode)")
	f.BoolVar(&opts.StreamingTools, "streaming-tools", false, "add the count (progress) and confirm_transfer (elicitation) tools")
	f.BoolVar(&opts.Content, "content", false, "add a resource, a resource template and a prompt, with completions and subscriptions")
	f.BoolVar(&opts.EventStore, "event-store", false, "keep SSE events for resumption (streams open with a priming event)")
	f.BoolVar(&opts.InspectionTools, "inspection-tools", false, "add fetch, query_rows, lookup_customer and digest (rows, PII, an injected instruction in a stream)")
	f.DurationVar(&opts.Latency, "latency", 0, "delay every tool call by this long (a slow upstream)")
	traceCfg.Flags(f)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	envflag.Annotate(f, envPrefix)
	cmd.AddCommand(newToolsCommand())
	return cmd
}

// newToolsCommand writes each tool definition to DIR/<name>.json and prints
// "<name> <class>" per tool, the class following the demo's own read-only
// hints. That is fine for a demo; a real operator classifies tools
// themselves (annotations are hints from the upstream, never trusted).
func newToolsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tools DIR",
		Short: "Write the demo's tool definitions to DIR and print each tool's suggested class",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h := demo.NewHandler(demo.Options{Logger: slog.New(slog.DiscardHandler)})
			defer h.Close()
			defs, err := h.Definitions(cmd.Context())
			if err != nil {
				return err
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			for _, d := range defs {
				if err := os.WriteFile(filepath.Join(args[0], d.Name+".json"), d.JSON, 0o644); err != nil {
					return err
				}
				class := "mutating"
				if d.ReadOnly {
					class = "read-only"
				}
				fmt.Fprintln(cmd.OutOrStdout(), d.Name, class)
			}
			return nil
		},
	}
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, addr string, opts demo.Options) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	h := demo.NewHandler(opts)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	opts.Logger.InfoContext(ctx, "demo upstream serving",
		slog.String("mcp", "http://"+ln.Addr().String()+"/mcp"),
		slog.String("calls", "http://"+ln.Addr().String()+"/calls"),
		slog.Bool("stateless", opts.Stateless), slog.Bool("require_bearer", opts.RequireBearer != ""))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	h.Close()
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
