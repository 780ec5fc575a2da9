package gwctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) policyCommand() *cobra.Command {
	cmd := group("policy", "Manage Cedar policy sets")
	cmd.AddCommand(a.policyApply(), a.policyList(), a.policyShow(), a.policyDelete(), a.policySchema(), a.policyTest(),
		a.policyHistory(), a.policyDiff(), a.policyRollback(), a.policyReplay(), a.policyTests())
	return cmd
}

func (a *app) policyApply() *cobra.Command {
	var (
		meta     metaFlags
		file     string
		name     string
		dryRun   bool
		disabled bool
		message  string
		keep     int32
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE --name NAME",
		Short: "Create or replace a policy set from a Cedar file",
		Long: `Creates or replaces a policy set. The server validates the Cedar source
against the gateway's schema (see "gwctl policy schema"); an invalid set is
refused with file:line:col messages and nothing changes. --dry-run validates
only. -f - reads the source from stdin.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			source, filename, err := a.readSource(file)
			if err != nil {
				return err
			}
			labels, err := parseLabels("label", meta.labels)
			if err != nil {
				return err
			}
			req := &adminv1.ApplyPolicySetRequest{
				Name: name, Source: string(source), Filename: filename,
				Owner: meta.owner, Description: meta.description, Labels: labels,
				Disabled: disabled, DryRun: dryRun, Message: message, HistoryLimit: keep,
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ApplyPolicySetResponse], error) {
					return s.Policy.ApplyPolicySet(ctx, connect.NewRequest(req))
				})
				if connect.CodeOf(err) == connect.CodeInvalidArgument {
					var ce *connect.Error
					errors.As(err, &ce)
					// The message holds "file:line:col: ..." lines; keep them intact.
					return fmt.Errorf("policy set %q was refused:\n%s", name, ce.Message())
				}
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				ps := resp.GetPolicySet()
				switch {
				case dryRun:
					return p.linef("policy set %q is valid: %d policies (dry run, nothing changed)", name, len(ps.GetPolicyIds()))
				case resp.GetUnchanged():
					return p.linef("policy set %q unchanged (version %d)", name, ps.GetVersion())
				}
				return p.linef("policy set %q applied: version %d, %d policies", name, ps.GetVersion(), len(ps.GetPolicyIds()))
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "Cedar source file (- for stdin)")
	f.StringVar(&name, "name", "", "name of the policy set")
	f.BoolVar(&dryRun, "dry-run", false, "validate only; change nothing")
	f.BoolVar(&disabled, "disabled", false, "store the set without evaluating it")
	f.StringVar(&message, "message", "", "why, kept with the version in the set's history (gwctl policy history)")
	f.Int32Var(&keep, "keep-history", 0, "how many versions the set's history keeps (default 20, at most 100)")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagFilename("filename", "cedar")
	return cmd
}

// readSource reads a policy file, or stdin for "-"; it returns the file's
// base name for error positions.
func (a *app) readSource(file string) ([]byte, string, error) {
	if file == "-" {
		b, err := io.ReadAll(a.in)
		if err != nil {
			return nil, "", fmt.Errorf("read stdin: %w", err)
		}
		return b, "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("read policy file: %w", err)
	}
	return b, filepath.Base(file), nil
}

func (a *app) policyList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List policy sets",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				sets, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.PolicySet, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListPolicySetsResponse], error) {
						return s.Policy.ListPolicySets(ctx, connect.NewRequest(&adminv1.ListPolicySetsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetPolicySets(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListPolicySetsResponse{PolicySets: sets})
				}
				rows := make([][]string, 0, len(sets))
				for _, ps := range sets {
					rows = append(rows, []string{ps.GetMeta().GetName(), fmt.Sprint(ps.GetVersion()), fmt.Sprint(len(ps.GetPolicyIds())),
						boolText(ps.GetDisabled()), ps.GetFilename(), ps.GetMeta().GetOwner(), fmt.Sprint(ps.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "VERSION", "POLICIES", "DISABLED", "FILE", "OWNER", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) policyShow() *cobra.Command {
	var version int64
	cmd := &cobra.Command{
		Use:   "show NAME [--version N]",
		Short: "Print a policy set's Cedar source (-o json|yaml: the whole set); --version: a kept version",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version != 0 {
				return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
					resp, err := fetchVersion(ctx, c, args[0], version)
					if err != nil {
						return err
					}
					if p.structured() {
						return p.message(resp)
					}
					return p.text(resp.GetVersion().GetSource())
				})
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetPolicySetResponse], error) {
					return s.Policy.GetPolicySet(ctx, connect.NewRequest(&adminv1.GetPolicySetRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.text(resp.GetPolicySet().GetSource())
			})
		},
	}
	cmd.Flags().Int64Var(&version, "version", 0, "print this kept version instead of the active one (gwctl policy history)")
	return cmd
}

func (a *app) policyDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy set",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeletePolicySetResponse], error) {
					return s.Policy.DeletePolicySet(ctx, connect.NewRequest(&adminv1.DeletePolicySetRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("policy set %q deleted", args[0])
			})
		},
	}
}

func (a *app) policySchema() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the gateway's Cedar schema (-o json: Cedar's JSON schema format)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetCedarSchemaResponse], error) {
					return s.Policy.GetCedarSchema(ctx, connect.NewRequest(&adminv1.GetCedarSchemaRequest{}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					if resp.GetJson() == "" {
						return errors.New("the server returned no JSON schema")
					}
					return p.rawJSON([]byte(resp.GetJson()))
				}
				return p.text(resp.GetCedar())
			})
		},
	}
}
