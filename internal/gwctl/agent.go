package gwctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) agentCommand() *cobra.Command {
	cmd := group("agent", "Register and manage agents")
	cmd.AddCommand(a.agentCreate(), a.agentList(), a.agentGet(),
		a.agentSetDisabled(true), a.agentSetDisabled(false), a.agentDelete(), a.agentRotateKey())
	return cmd
}

func (a *app) agentCreate() *cobra.Command {
	var (
		meta         metaFlags
		team         string
		keyTTL       time.Duration
		noKey        bool
		spiffeIDs    []string
		fingerprints []string
		jwtSubjects  []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Register an agent and print its API key (shown once)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			subjects, err := parseJWTSubjects(jwtSubjects)
			if err != nil {
				return err
			}
			req := &adminv1.CreateAgentRequest{
				Agent:    &configv1.Agent{Meta: m, Team: team, SpiffeIds: spiffeIDs, CertFingerprints: fingerprints, JwtSubjects: subjects},
				NoApiKey: noKey,
			}
			if keyTTL > 0 {
				req.ApiKeyTtl = durationpb.New(keyTTL)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateAgentResponse], error) {
					return s.Agent.CreateAgent(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				if err := printAgent(p, resp.GetAgent()); err != nil {
					return err
				}
				if resp.GetApiKey() == "" {
					return nil
				}
				return p.text("\nAPI key (shown only this once; store it now, it cannot be retrieved later):\n\n    " + resp.GetApiKey() + "\n")
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringVar(&team, "team", "", "team the agent belongs to")
	f.Var(newDurationFlag(&keyTTL, 0), "key-ttl", "lifetime of the API key, e.g. 90d (default: never expires)")
	f.BoolVar(&noKey, "no-api-key", false, "register without an API key (JWT or mTLS only)")
	f.StringArrayVar(&spiffeIDs, "spiffe-id", nil, "SPIFFE ID of the agent's client certificate (repeatable)")
	f.StringArrayVar(&fingerprints, "cert-fingerprint", nil, "sha256:<hex> fingerprint of a client certificate (repeatable)")
	f.StringArrayVar(&jwtSubjects, "jwt-subject", nil, "SOURCE=SUBJECT: JWTs from identity source SOURCE whose agent claim is SUBJECT identify this agent (repeatable)")
	cmd.MarkFlagsMutuallyExclusive("no-api-key", "key-ttl")
	return cmd
}

func (a *app) agentList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List agents",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				agents, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.Agent, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListAgentsResponse], error) {
						return s.Agent.ListAgents(ctx, connect.NewRequest(&adminv1.ListAgentsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetAgents(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListAgentsResponse{Agents: agents})
				}
				rows := make([][]string, 0, len(agents))
				for _, ag := range agents {
					rows = append(rows, []string{ag.GetMeta().GetName(), ag.GetTeam(), ag.GetMeta().GetOwner(),
						boolText(ag.GetDisabled()), fmt.Sprint(len(ag.GetApiKeys())), fmt.Sprint(ag.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "TEAM", "OWNER", "DISABLED", "KEYS", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) agentGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an agent",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetAgentResponse], error) {
					return s.Agent.GetAgent(ctx, connect.NewRequest(&adminv1.GetAgentRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return printAgent(p, resp.GetAgent())
			})
		},
	}
}

func (a *app) agentSetDisabled(disabled bool) *cobra.Command {
	verb, short := "enable", "Let a disabled agent call the gateway again"
	if disabled {
		verb, short = "disable", "Refuse every call of an agent (keeps its registration)"
	}
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetAgentDisabledResponse], error) {
					return s.Agent.SetAgentDisabled(ctx, connect.NewRequest(&adminv1.SetAgentDisabledRequest{Name: args[0], Disabled: disabled}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("agent %q %sd (revision %d)", args[0], verb, resp.GetAgent().GetMeta().GetRevision())
			})
		},
	}
}

func (a *app) agentDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an agent and its API keys",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteAgentResponse], error) {
					return s.Agent.DeleteAgent(ctx, connect.NewRequest(&adminv1.DeleteAgentRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("agent %q deleted", args[0])
			})
		},
	}
}

func printAgent(p *printer, ag *configv1.Agent) error {
	var keys []string
	for _, k := range ag.GetApiKeys() {
		exp := "never expires"
		if k.GetExpireTime() != nil {
			exp = "expires " + timeText(k.GetExpireTime())
		}
		keys = append(keys, fmt.Sprintf("%s (%s)", k.GetId(), exp))
	}
	var subjects []string
	for _, js := range ag.GetJwtSubjects() {
		subjects = append(subjects, js.GetIdentitySource()+": "+js.GetSubject())
	}
	fs := append(metaFields(ag.GetMeta(), "Name"),
		field{"Team", ag.GetTeam()},
		field{"Disabled", boolText(ag.GetDisabled())},
		field{"API keys", strings.Join(keys, ", ")},
		field{"JWT subjects", strings.Join(subjects, ", ")},
		field{"SPIFFE IDs", strings.Join(ag.GetSpiffeIds(), ", ")},
		field{"Cert fingerprints", strings.Join(ag.GetCertFingerprints(), ", ")},
	)
	return p.fields(append(fs, metaTrailer(ag.GetMeta())...))
}

// metaFields are the leading lines of a resource's detail view.
func metaFields(m *configv1.ResourceMeta, nameKey string) []field {
	return []field{
		{nameKey, m.GetName()},
		{"Owner", m.GetOwner()},
		{"Description", m.GetDescription()},
		{"Labels", labelsText(m.GetLabels())},
	}
}

// metaTrailer are the closing lines of a resource's detail view.
func metaTrailer(m *configv1.ResourceMeta) []field {
	return []field{
		{"Revision", fmt.Sprint(m.GetRevision())},
		{"Created", joinNonEmpty(timeText(m.GetCreateTime()), "by", m.GetCreatedBy())},
		{"Updated", joinNonEmpty(timeText(m.GetUpdateTime()), "by", m.GetUpdatedBy())},
	}
}

// joinNonEmpty joins "a sep b", dropping the separator when either is empty.
func joinNonEmpty(a, sep, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + sep + " " + b
}

// parseJWTSubjects turns SOURCE=SUBJECT flags into bindings.
func parseJWTSubjects(flags []string) ([]*configv1.JwtSubject, error) {
	out := make([]*configv1.JwtSubject, 0, len(flags))
	for _, f := range flags {
		src, sub, ok := strings.Cut(f, "=")
		if !ok || src == "" || sub == "" {
			return nil, fmt.Errorf("--jwt-subject %q: want SOURCE=SUBJECT (an identity source name and the subject its tokens carry)", f)
		}
		out = append(out, &configv1.JwtSubject{IdentitySource: src, Subject: sub})
	}
	return out, nil
}

func (a *app) agentRotateKey() *cobra.Command {
	var overlap, keyTTL time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-key NAME",
		Short: "Issue a new API key (shown once); the old one keeps working for --overlap",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &adminv1.RotateAgentKeyRequest{Name: args[0], Overlap: durationpb.New(overlap)}
			if keyTTL > 0 {
				req.Ttl = durationpb.New(keyTTL)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.RotateAgentKeyResponse], error) {
					return s.Agent.RotateAgentKey(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				if err := printAgent(p, resp.GetAgent()); err != nil {
					return err
				}
				return p.text("\nNew API key (shown only this once; the previous key stops working after the overlap):\n\n    " + resp.GetApiKey() + "\n")
			})
		},
	}
	f := cmd.Flags()
	f.Var(newDurationFlag(&overlap, 24*time.Hour), "overlap", "how long the previous key keeps working (0s: stop it now)")
	f.Var(newDurationFlag(&keyTTL, 0), "key-ttl", "lifetime of the new key (default: never expires)")
	return cmd
}
