package gwctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// maxSecretBytes is the API's limit on a secret value.
const maxSecretBytes = 64 << 10

func (a *app) secretCommand() *cobra.Command {
	cmd := group("secret", "Manage upstream credentials (values go in, never come out)")
	cmd.AddCommand(a.secretSet(), a.secretList(), a.secretGet(), a.secretDelete())
	return cmd
}

func (a *app) secretSet() *cobra.Command {
	var (
		meta        metaFlags
		fromFile    string
		fromLiteral string
		fromStdin   bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME (--from-file F | --from-literal V | --from-stdin)",
		Short: "Create a secret or replace its value",
		Long: `Creates a secret or replaces its value. The value is sent as is (a trailing
newline is kept) and is never printed. --from-literal leaves the value in
your shell history and the process list; prefer --from-file or --from-stdin.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				value []byte
				err   error
			)
			switch {
			case fromStdin:
				value, err = readLimited(a.in, "stdin")
			case cmd.Flags().Changed("from-file"):
				value, err = readSecretFile(fromFile)
			default:
				value = []byte(fromLiteral)
			}
			if err != nil {
				return err
			}
			if len(value) == 0 {
				return errors.New("the secret value is empty")
			}
			labels, err := parseLabels("label", meta.labels)
			if err != nil {
				return err
			}
			req := &adminv1.SetSecretRequest{Name: args[0], Value: value, Owner: meta.owner, Description: meta.description, Labels: labels}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetSecretResponse], error) {
					return s.Secret.SetSecret(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				sec := resp.GetSecret()
				return p.linef("secret %q set: version %d, %d bytes", args[0], sec.GetVersion(), sec.GetSize())
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fromFile, "from-file", "", "read the value from a file")
	f.StringVar(&fromLiteral, "from-literal", "", "the value itself (visible in shell history)")
	f.BoolVar(&fromStdin, "from-stdin", false, "read the value from stdin")
	cmd.MarkFlagsOneRequired("from-file", "from-literal", "from-stdin")
	cmd.MarkFlagsMutuallyExclusive("from-file", "from-literal", "from-stdin")
	return cmd
}

func readSecretFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read --from-file: %w", err)
	}
	defer f.Close()
	return readLimited(f, name)
}

func readLimited(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSecretBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(b) > maxSecretBytes {
		return nil, fmt.Errorf("the secret value from %s is over %d KiB", what, maxSecretBytes>>10)
	}
	return b, nil
}

func (a *app) secretList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List secrets (metadata only)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				secrets, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.Secret, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListSecretsResponse], error) {
						return s.Secret.ListSecrets(ctx, connect.NewRequest(&adminv1.ListSecretsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetSecrets(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListSecretsResponse{Secrets: secrets})
				}
				rows := make([][]string, 0, len(secrets))
				for _, s := range secrets {
					rows = append(rows, []string{s.GetMeta().GetName(), fmt.Sprint(s.GetVersion()), fmt.Sprint(s.GetSize()),
						s.GetMeta().GetOwner(), timeText(s.GetMeta().GetUpdateTime()), fmt.Sprint(s.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "VERSION", "SIZE", "OWNER", "UPDATED", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) secretGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a secret's metadata (never its value)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetSecretResponse], error) {
					return s.Secret.GetSecret(ctx, connect.NewRequest(&adminv1.GetSecretRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				s := resp.GetSecret()
				fs := append(metaFields(s.GetMeta(), "Name"),
					field{"Version", fmt.Sprint(s.GetVersion())},
					field{"Size", fmt.Sprintf("%d bytes", s.GetSize())})
				return p.fields(append(fs, metaTrailer(s.GetMeta())...))
			})
		},
	}
}

func (a *app) secretDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a secret (refused while an upstream refers to it)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteSecretResponse], error) {
					return s.Secret.DeleteSecret(ctx, connect.NewRequest(&adminv1.DeleteSecretRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("secret %q deleted", args[0])
			})
		},
	}
}
