package gwctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) identityCommand() *cobra.Command {
	cmd := group("identity", "Manage trusted identity sources (JWT issuers, mTLS authorities)")
	cmd.AddCommand(a.identityAddJWT(), a.identityAddMTLS(), a.identityList(), a.identityGet(), a.identityDelete())
	return cmd
}

func (a *app) identityAddJWT() *cobra.Command {
	var (
		meta     metaFlags
		iss      configv1.JwtIssuer
		jwksFile string
	)
	use := newEnumFlag(configv1.JwtUse_JWT_USE_UNSPECIFIED, "JWT_USE_")
	cmd := &cobra.Command{
		Use:   "add-jwt NAME --issuer ISS (--jwks-url URL | --jwks-file FILE)",
		Short: "Trust JWTs from an issuer",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			if jwksFile != "" {
				b, err := os.ReadFile(jwksFile)
				if err != nil {
					return fmt.Errorf("read --jwks-file: %w", err)
				}
				if !json.Valid(b) {
					return errors.New("--jwks-file is not a JSON document")
				}
				iss.Jwks = b
			}
			iss.Use = configv1.JwtUse(use.num)
			src := &configv1.IdentitySource{Meta: m, Kind: &configv1.IdentitySource_JwtIssuer{JwtIssuer: &iss}}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateIdentitySourceResponse], error) {
					return s.Identity.CreateIdentitySource(ctx, connect.NewRequest(&adminv1.CreateIdentitySourceRequest{IdentitySource: src}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return printIdentitySource(p, resp.GetIdentitySource())
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringVar(&iss.Issuer, "issuer", "", "expected iss claim")
	f.StringVar(&iss.JwksUrl, "jwks-url", "", "URL of the issuer's JWKS")
	f.StringVar(&jwksFile, "jwks-file", "", "file holding the JWKS (JSON)")
	f.StringArrayVar(&iss.Audiences, "audience", nil, "accepted aud value (repeatable)")
	f.StringArrayVar(&iss.Algorithms, "alg", nil, "accepted signing algorithm, e.g. RS256, ES256, EdDSA (repeatable)")
	addEnumFlag(cmd, use, "use", "what the issuer's tokens identify")
	f.StringVar(&iss.AgentClaim, "agent-claim", "", `claim naming the agent (default "sub")`)
	f.StringVar(&iss.UserClaim, "user-claim", "", `claim naming the user (default "sub")`)
	f.StringVar(&iss.GroupsClaim, "groups-claim", "", `claim listing the user's groups (default "groups")`)
	_ = cmd.MarkFlagRequired("issuer")
	cmd.MarkFlagsOneRequired("jwks-url", "jwks-file")
	cmd.MarkFlagsMutuallyExclusive("jwks-url", "jwks-file")
	return cmd
}

func (a *app) identityList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List identity sources",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				srcs, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.IdentitySource, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListIdentitySourcesResponse], error) {
						return s.Identity.ListIdentitySources(ctx, connect.NewRequest(&adminv1.ListIdentitySourcesRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetIdentitySources(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListIdentitySourcesResponse{IdentitySources: srcs})
				}
				rows := make([][]string, 0, len(srcs))
				for _, s := range srcs {
					kind, issuer, use := identityKind(s)
					rows = append(rows, []string{s.GetMeta().GetName(), kind, issuer, use, fmt.Sprint(s.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "KIND", "ISSUER", "USE", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) identityGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an identity source",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetIdentitySourceResponse], error) {
					return s.Identity.GetIdentitySource(ctx, connect.NewRequest(&adminv1.GetIdentitySourceRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return printIdentitySource(p, resp.GetIdentitySource())
			})
		},
	}
}

func (a *app) identityDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an identity source (refused while an agent refers to it)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteIdentitySourceResponse], error) {
					return s.Identity.DeleteIdentitySource(ctx, connect.NewRequest(&adminv1.DeleteIdentitySourceRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("identity source %q deleted", args[0])
			})
		},
	}
}

func identityKind(s *configv1.IdentitySource) (kind, issuer, use string) {
	switch k := s.GetKind().(type) {
	case *configv1.IdentitySource_JwtIssuer:
		return "jwt", k.JwtIssuer.GetIssuer(), enumLabel(k.JwtIssuer.GetUse().String(), "JWT_USE_")
	case *configv1.IdentitySource_MtlsAuthority:
		return "mtls", "", ""
	}
	return "unknown", "", ""
}

func printIdentitySource(p *printer, s *configv1.IdentitySource) error {
	kind, issuer, use := identityKind(s)
	fs := append(metaFields(s.GetMeta(), "Name"), field{"Kind", kind})
	if j := s.GetJwtIssuer(); j != nil {
		jwks := j.GetJwksUrl()
		if jwks == "" && len(j.GetJwks()) > 0 {
			jwks = fmt.Sprintf("inline (%d bytes)", len(j.GetJwks()))
		}
		leeway := ""
		if j.GetLeeway() != nil {
			leeway = j.GetLeeway().AsDuration().String()
		}
		fs = append(fs,
			field{"Issuer", issuer},
			field{"JWKS", jwks},
			field{"Audiences", strings.Join(j.GetAudiences(), ", ")},
			field{"Algorithms", strings.Join(j.GetAlgorithms(), ", ")},
			field{"Use", use},
			field{"Agent claim", j.GetAgentClaim()},
			field{"User claim", j.GetUserClaim()},
			field{"Groups claim", j.GetGroupsClaim()},
			field{"Leeway", leeway},
		)
	}
	return p.fields(append(fs, metaTrailer(s.GetMeta())...))
}

func (a *app) identityAddMTLS() *cobra.Command {
	var (
		meta   metaFlags
		caFile string
	)
	cmd := &cobra.Command{
		Use:   "add-mtls NAME --trust-file FILE",
		Short: "Trust client certificates signed by a CA other than the cluster CA",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			pemBytes, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("read --trust-file: %w", err)
			}
			src := &configv1.IdentitySource{Meta: m, Kind: &configv1.IdentitySource_MtlsAuthority{MtlsAuthority: &configv1.MtlsAuthority{CaPem: string(pemBytes)}}}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateIdentitySourceResponse], error) {
					return s.Identity.CreateIdentitySource(ctx, connect.NewRequest(&adminv1.CreateIdentitySourceRequest{IdentitySource: src}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return printIdentitySource(p, resp.GetIdentitySource())
			})
		},
	}
	meta.register(cmd)
	// Not --ca-file: that global flag names the CA gwctl trusts for the
	// control plane, and a local flag of the same name would shadow it.
	cmd.Flags().StringVar(&caFile, "trust-file", "", "PEM file of the CA certificates to trust for agents' client certificates")
	_ = cmd.MarkFlagRequired("trust-file")
	return cmd
}
