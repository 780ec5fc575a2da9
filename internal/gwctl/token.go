package gwctl

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) tokenCommand() *cobra.Command {
	cmd := group("token", "Manage admin tokens")
	cmd.AddCommand(a.tokenCreate(), a.tokenList(), a.tokenRevoke())
	return cmd
}

func (a *app) tokenCreate() *cobra.Command {
	var (
		ttl         time.Duration
		description string
		owner       string
	)
	role := newEnumFlag(configv1.Role_ROLE_UNSPECIFIED, "ROLE_")
	cmd := &cobra.Command{
		Use:   "create --role ROLE --ttl DURATION",
		Short: "Issue an admin token and print it (shown once)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if role.num == 0 {
				return errors.New("--role is required")
			}
			if ttl <= 0 {
				return errors.New("--ttl must be positive (at most 365d)")
			}
			req := &adminv1.CreateTokenRequest{Role: configv1.Role(role.num), Ttl: durationpb.New(ttl), Description: description, Owner: owner}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateTokenResponse], error) {
					return s.Token.CreateToken(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				t := resp.GetToken()
				if err := p.fields([]field{
					{"ID", t.GetMeta().GetName()},
					{"Role", enumLabel(t.GetRole().String(), "ROLE_")},
					{"Expires", timeText(t.GetExpireTime())},
					{"Description", t.GetMeta().GetDescription()},
				}); err != nil {
					return err
				}
				return p.text("\nToken (shown only this once; store it now, it cannot be retrieved later):\n\n    " + resp.GetSecret() + "\n")
			})
		},
	}
	addEnumFlag(cmd, role, "role", "what the token may do")
	f := cmd.Flags()
	f.Var(newDurationFlag(&ttl, 0), "ttl", "lifetime of the token, e.g. 12h, 30d (at most 365d)")
	f.StringVar(&description, "description", "", "what the token is for")
	f.StringVar(&owner, "owner", "", "team or person accountable for it")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.MarkFlagRequired("ttl")
	return cmd
}

func (a *app) tokenList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List admin tokens (never their text)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				tokens, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.AdminToken, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListTokensResponse], error) {
						return s.Token.ListTokens(ctx, connect.NewRequest(&adminv1.ListTokensRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetTokens(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListTokensResponse{Tokens: tokens})
				}
				rows := make([][]string, 0, len(tokens))
				for _, t := range tokens {
					expires := timeText(t.GetExpireTime())
					if expires == "" {
						expires = "never"
					}
					rows = append(rows, []string{t.GetMeta().GetName(), enumLabel(t.GetRole().String(), "ROLE_"), expires,
						truncate(t.GetMeta().GetDescription(), 40), t.GetMeta().GetCreatedBy()})
				}
				return p.table([]string{"ID", "ROLE", "EXPIRES", "DESCRIPTION", "CREATED-BY"}, rows)
			})
		},
	}
}

func (a *app) tokenRevoke() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an admin token on every node",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.RevokeTokenResponse], error) {
					return s.Token.RevokeToken(ctx, connect.NewRequest(&adminv1.RevokeTokenRequest{Id: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("token %q revoked", args[0])
			})
		},
	}
}
