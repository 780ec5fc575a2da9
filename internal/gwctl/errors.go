package gwctl

import (
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

const msgUnauthenticated = "the token was refused (missing, unknown, revoked or expired): pass --token or set GWCTL_TOKEN"

// usageError is a mistake in the command line: Run exits 2 and points to
// --help.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// describe turns an error into the text after "Error: ".
func describe(err error) string {
	var (
		giveUp *client.GiveUpError
		tlsErr *client.TLSError
		ce     *connect.Error
	)
	switch {
	case errors.As(err, &giveUp), errors.As(err, &tlsErr):
		return err.Error()
	case errors.As(err, &ce):
		switch ce.Code() {
		case connect.CodeUnauthenticated:
			return msgUnauthenticated
		case connect.CodePermissionDenied:
			if ce.Message() != "" {
				return ce.Message()
			}
			return "permission denied: the token's role is too small"
		default:
			return fmt.Sprintf("%s: %s", ce.Code(), ce.Message())
		}
	}
	return err.Error()
}

// noArgs refuses arguments; on a command with subcommands the argument is an
// unknown subcommand.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return &usageError{cmd: cmd, err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
	}
	return &usageError{cmd: cmd, err: fmt.Errorf("%q takes no arguments", cmd.CommandPath())}
}

// exactArgs wants one argument per name, e.g. exactArgs("UPSTREAM", "TOOL").
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		return &usageError{cmd: cmd, err: fmt.Errorf("%q needs %s (got %d arguments)",
			cmd.CommandPath(), strings.Join(names, " "), len(args))}
	}
}
