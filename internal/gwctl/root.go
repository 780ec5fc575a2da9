// Package gwctl is the operator CLI of Portcullis: a cobra command tree over
// the control plane's admin API.
package gwctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// Option changes how NewRootCommand builds the command tree.
type Option func(*app)

// WithLookupEnv replaces os.LookupEnv as the source of GWCTL_* variables.
func WithLookupEnv(lookup func(string) (string, bool)) Option {
	return func(a *app) { a.lookupEnv = lookup }
}

// app is the state shared by the commands of one invocation.
type app struct {
	in        io.Reader
	out       io.Writer
	errOut    io.Writer
	lookupEnv func(string) (string, bool)
	flags     globalFlags
}

// NewRootCommand builds the gwctl command tree reading from stdin and writing
// to stdout and stderr. Run it with Run.
func NewRootCommand(stdin io.Reader, stdout, stderr io.Writer, opts ...Option) *cobra.Command {
	a := &app{in: stdin, out: stdout, errOut: stderr, lookupEnv: os.LookupEnv}
	for _, o := range opts {
		o(a)
	}
	root := &cobra.Command{
		Use:   "gwctl",
		Short: "Operate a Portcullis agent gateway through its control plane",
		Long: `gwctl manages a Portcullis control plane: cluster membership, agents,
upstreams, tool pins, Cedar policies, identity sources, secrets, admin
tokens, cluster-wide settings and backups.

Every global flag can also be set in the environment (GWCTL_SERVER,
GWCTL_TOKEN, ...); a flag on the command line wins.`,
		Args:          noArgs,
		RunE:          showHelp,
		SilenceErrors: true, // Run prints the error once
		SilenceUsage:  true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c, err: err}
	})
	a.flags.register(root)
	root.AddCommand(
		a.clusterCommand(),
		a.agentCommand(),
		a.upstreamCommand(),
		a.toolCommand(),
		a.policyCommand(),
		a.rolloutCommand(),
		a.identityCommand(),
		a.secretCommand(),
		a.valueListCommand(),
		a.inspectCommand(),
		a.priceCommand(),
		a.budgetCommand(),
		a.rateLimitCommand(),
		a.usageCommand(),
		a.tokenCommand(),
		a.snapshotCommand(),
		a.adminLogCommand(),
		a.dataplaneCommand(),
		a.freezeCommand(),
		a.settingCommand(),
		a.accessCommand(),
		a.auditCommand(),
		a.alertCommand(),
	)
	return root
}

// Run executes root (with the arguments set on it, or os.Args) and returns
// the process exit code: 0 on success, 2 on a usage error, 1 on any other
// error. The error is printed once to root's stderr as "Error: ...".
func Run(ctx context.Context, root *cobra.Command) int {
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(root.ErrOrStderr(), "Error: %s\n", describe(err))
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(root.ErrOrStderr(), "Run '%s --help' for usage.\n", ue.cmd.CommandPath())
		return 2
	}
	return 1
}

// group builds a command that only holds subcommands.
func group(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: noArgs, RunE: showHelp}
}

// showHelp is the body of commands that only hold subcommands; noArgs has
// already refused an unknown subcommand.
func showHelp(cmd *cobra.Command, _ []string) error {
	return cmd.Help()
}

// run is the body of every command that calls the control plane: it resolves
// the global settings, bounds the command by --timeout and hands fn a client
// and a printer.
func (a *app) run(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client, p *printer) error) error {
	s, err := a.settings(cmd)
	if err != nil {
		return err
	}
	c, err := s.newClient(a.errOut)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), s.timeout)
	defer cancel()
	return fn(ctx, c, &printer{format: s.output, w: a.out})
}
