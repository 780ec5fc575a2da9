// Command fakellm runs the fake LLM provider of package provider on its
// own, for end-to-end tests and benchmarks:
//
//	go run ./test/fakellm --addr 127.0.0.1:7460 [--chunk-delay 10ms]
//
// It answers OpenAI's /v1/chat/completions and /v1/responses (API base
// http://ADDR/v1) and Anthropic's /v1/messages (base http://ADDR), and
// lists what it answered at GET /fake/reports. The API keys it accepts come
// from FAKELLM_OPENAI_KEY and FAKELLM_ANTHROPIC_KEY, never the command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/test/fakellm/provider"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fakellm:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var addr string
	opts := provider.Options{OpenAIKey: os.Getenv("FAKELLM_OPENAI_KEY"), AnthropicKey: os.Getenv("FAKELLM_ANTHROPIC_KEY")}
	cmd := &cobra.Command{
		Use:           "fakellm",
		Short:         "Run a fake LLM provider (OpenAI and Anthropic shapes)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, addr, opts)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:7460", "listen address")
	cmd.Flags().DurationVar(&opts.ChunkDelay, "chunk-delay", 0, "pause between streamed chunks")
	return cmd
}

func run(ctx context.Context, addr string, opts provider.Options) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: provider.New(opts), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "fakellm serving on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
