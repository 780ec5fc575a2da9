package gwctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	cmd.AddCommand(a.secretSet(), a.secretBind(), a.secretList(), a.secretGet(), a.secretDelete())
	return cmd
}

func (a *app) secretSet() *cobra.Command {
	var (
		meta        metaFlags
		fromFile    string
		fromLiteral string
		fromStdin   bool
		hosts       []string
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--hosts H,...] (--from-file F | --from-literal V | --from-stdin)",
		Short: "Create a secret or replace its value",
		Long: `Creates a secret or replaces its value. The value is sent as is (a trailing
newline is kept) and is never printed. --from-literal leaves the value in
your shell history and the process list; prefer --from-file or --from-stdin.

A secret is bound to the hosts it may be sent to, and the gateway sends it
(or an OAuth token bought with it) to no other host: an upstream on another
host cannot use it. A new secret needs --hosts: host names or IP addresses,
each optionally with :port ("api.github.com", "127.0.0.1:7450",
"[::1]:8443"); an OAuth client secret needs the token endpoint's host and
the upstream's. Replacing the value of an existing secret keeps its
binding: leave out --hosts. Changing a binding needs an admin token
("gwctl secret bind").`,
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
			req := &adminv1.SetSecretRequest{Name: args[0], Value: value, Owner: meta.owner, Description: meta.description, Labels: labels, Hosts: hosts}
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
				return p.linef("secret %q set: version %d, %d bytes, sent only to %s", args[0], sec.GetVersion(), sec.GetSize(), hostsText(sec))
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fromFile, "from-file", "", "read the value from a file")
	f.StringVar(&fromLiteral, "from-literal", "", "the value itself (visible in shell history)")
	f.BoolVar(&fromStdin, "from-stdin", false, "read the value from stdin")
	f.StringSliceVar(&hosts, "hosts", nil, "the hosts the secret may be sent to, `H[:PORT],...` (required for a new secret)")
	cmd.MarkFlagsOneRequired("from-file", "from-literal", "from-stdin")
	cmd.MarkFlagsMutuallyExclusive("from-file", "from-literal", "from-stdin")
	return cmd
}

func (a *app) secretBind() *cobra.Command {
	var hosts []string
	cmd := &cobra.Command{
		Use:   "bind NAME --hosts H,...",
		Short: "Change the hosts a secret may be sent to (admin)",
		Long: `Replaces the hosts a secret may be sent to, keeping its value. Needs an
admin token: whoever may move a secret can have it sent to a listener of
their own. Refused while an upstream that uses the secret would send it to
a host the new list leaves out. Secrets stored before bindings existed go
only where the upstreams that use them are ("implicit" in "secret get");
binding such a secret makes that explicit.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(hosts) == 0 {
				return errors.New("--hosts is required: the hosts the secret may be sent to")
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.BindSecretResponse], error) {
					return s.Secret.BindSecret(ctx, connect.NewRequest(&adminv1.BindSecretRequest{Name: args[0], Hosts: hosts}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("secret %q is sent only to %s", args[0], hostsText(resp.GetSecret()))
			})
		},
	}
	cmd.Flags().StringSliceVar(&hosts, "hosts", nil, "the hosts the secret may be sent to, `H[:PORT],...`")
	return cmd
}

// hostsText is where a secret may be sent, for people.
func hostsText(s *configv1.Secret) string {
	switch {
	case len(s.GetHosts()) > 0:
		return strings.Join(s.GetHosts(), ",")
	case len(s.GetImplicitHosts()) > 0:
		return strings.Join(s.GetImplicitHosts(), ",") + " (implicit: where its upstreams are)"
	default:
		return "no host (implicit: no upstream uses it)"
	}
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
					rows = append(rows, []string{s.GetMeta().GetName(), fmt.Sprint(s.GetVersion()), fmt.Sprint(s.GetSize()), hostsText(s),
						s.GetMeta().GetOwner(), timeText(s.GetMeta().GetUpdateTime()), fmt.Sprint(s.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "VERSION", "SIZE", "HOSTS", "OWNER", "UPDATED", "REVISION"}, rows)
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
					field{"Size", fmt.Sprintf("%d bytes", s.GetSize())},
					field{"Hosts", hostsText(s)})
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
