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

func (a *app) upstreamCommand() *cobra.Command {
	cmd := group("upstream", "Manage the servers the gateway forwards calls to")
	cmd.AddCommand(a.upstreamAdd(), a.upstreamList(), a.upstreamGet(), a.upstreamRemove(), a.upstreamDiscover(), a.upstreamApproveCard())
	return cmd
}

func (a *app) upstreamAdd() *cobra.Command {
	var (
		meta           metaFlags
		rawURL         string
		prefix         string
		noPrefix       bool
		bearerSecret   string
		headerSecret   string
		allowLinkLocal bool
		perCall        time.Duration
		maxRetries     int32
		breakerFails   int32
		breakerOpen    time.Duration
		maxConcurrency int32
		models         []string
		aliases        []string
		outputCap      int64
		cardPath       string
	)
	protocol := newEnumFlag(configv1.Protocol_PROTOCOL_MCP, "PROTOCOL_")
	provider := newEnumFlag(configv1.LlmProvider_LLM_PROVIDER_UNSPECIFIED, "LLM_PROVIDER_")
	era := newEnumFlag(configv1.McpEra_MCP_ERA_UNSPECIFIED, "MCP_ERA_")
	cmd := &cobra.Command{
		Use:   "add NAME --url URL",
		Short: "Register an upstream server",
		Long: `Registers an upstream. Its tools are federated under a prefix
("github" makes "github__create_issue"): by default the upstream's name,
--prefix to choose another, --no-prefix for none. The prefix cannot change
later. Credentials name a secret (see "gwctl secret set"); the caller's own
credential is never forwarded. --mcp-era picks the MCP protocol era; by
default the data plane detects it (server/discover, else initialize).

An LLM provider is --protocol llm with --provider openai, anthropic or
openai-compatible, its API base as --url (https://api.openai.com/v1,
https://api.anthropic.com), its key as a secret (--bearer-secret for OpenAI,
--header-secret x-api-key=NAME for Anthropic) and the models agents may call
(--model, repeatable): agents call them "<prefix>/<model>", or by an alias
(--alias NAME=MODEL). --output-cap is the output a call is assumed to produce
when it sets no max_tokens (default 4096): what a budget reserves, and the
limit the gateway sets on an OpenAI request that has none.

  gwctl upstream add openai --protocol llm --provider openai \
      --url https://api.openai.com/v1 --bearer-secret openai-key \
      --model gpt-4o --model gpt-4o-mini --alias fast=gpt-4o-mini

An A2A agent (--protocol a2a) is registered by its JSON-RPC endpoint
(--url); its card is fetched from /.well-known/agent-card.json on the same
origin, or from --agent-card-path. Agents call it through the gateway at
/a2a/NAME once its card is approved ("gwctl upstream approve-card NAME").`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			up := &configv1.Upstream{
				Meta:           m,
				Protocol:       configv1.Protocol(protocol.num),
				Url:            rawURL,
				AllowLinkLocal: allowLinkLocal,
				McpEra:         configv1.McpEra(era.num),
				A2ACardPath:    cardPath,
			}
			switch {
			case noPrefix:
				up.ToolPrefix = new(string)
			case cmd.Flags().Changed("prefix"):
				up.ToolPrefix = &prefix
			}
			switch {
			case bearerSecret != "":
				up.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{
					Bearer: &configv1.BearerCredential{Secret: bearerSecret}}}
			case headerSecret != "":
				header, secret, ok := strings.Cut(headerSecret, "=")
				if !ok || header == "" || secret == "" {
					return fmt.Errorf("invalid --header-secret %q: want HEADER=SECRET_NAME", headerSecret)
				}
				up.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Header{
					Header: &configv1.HeaderCredential{Header: header, Secret: secret}}}
			}
			res := &configv1.Resilience{BreakerFailures: breakerFails}
			if perCall > 0 {
				res.Timeout = durationpb.New(perCall)
			}
			if breakerOpen > 0 {
				res.BreakerOpen = durationpb.New(breakerOpen)
			}
			if cmd.Flags().Changed("max-retries") {
				res.MaxRetries = &maxRetries
			}
			if res.Timeout != nil || res.BreakerOpen != nil || res.MaxRetries != nil || res.BreakerFailures != 0 {
				up.Resilience = res
			}
			if maxConcurrency != 0 {
				up.Limits = &configv1.UpstreamLimits{MaxConcurrency: maxConcurrency}
			}
			if up.Protocol == configv1.Protocol_PROTOCOL_LLM || provider.num != 0 || len(models) > 0 {
				l, err := llmSettings(configv1.LlmProvider(provider.num), models, aliases, outputCap)
				if err != nil {
					return err
				}
				up.Llm = l
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateUpstreamResponse], error) {
					return s.Upstream.CreateUpstream(ctx, connect.NewRequest(&adminv1.CreateUpstreamRequest{Upstream: up}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return printUpstream(p, resp.GetUpstream())
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringVar(&rawURL, "url", "", "base URL of the upstream (http or https)")
	addEnumFlag(cmd, protocol, "protocol", "protocol the upstream speaks")
	addEnumFlag(cmd, era, "mcp-era", "MCP protocol era to speak (default: detect)")
	addEnumFlag(cmd, provider, "provider", "the LLM provider's API (--protocol llm)")
	f.StringArrayVar(&models, "model", nil, "a model agents may call, by the provider's id (--protocol llm; repeatable)")
	f.StringArrayVar(&aliases, "alias", nil, "another name for a model: NAME=MODEL (repeatable)")
	f.Int64Var(&outputCap, "output-cap", 0, "output tokens a call is assumed to produce when it sets no limit (default 4096)")
	f.StringVar(&cardPath, "agent-card-path", "", "A2A: path of the agent card on the URL's origin (default /.well-known/agent-card.json)")
	f.StringVar(&prefix, "prefix", "", "tool-name prefix (default: the upstream's name)")
	f.BoolVar(&noPrefix, "no-prefix", false, "federate the tools without a prefix")
	f.StringVar(&bearerSecret, "bearer-secret", "", "send the named secret as Authorization: Bearer")
	f.StringVar(&headerSecret, "header-secret", "", "send a secret in a header: HEADER=SECRET_NAME")
	f.BoolVar(&allowLinkLocal, "allow-link-local", false, "allow a link-local or cloud-metadata destination")
	f.Var(newDurationFlag(&perCall, 0), "timeout-per-call", "per-call timeout at the data plane (default 30s)")
	f.Int32Var(&maxRetries, "max-retries", 2, "retries of a failed call to a read-only or idempotent tool (0: none)")
	f.Int32Var(&breakerFails, "breaker-failures", 0, "consecutive failures that open the circuit breaker (default 5)")
	f.Var(newDurationFlag(&breakerOpen, 0), "breaker-open", "how long an open breaker refuses calls before a trial call (default 10s)")
	f.Int32Var(&maxConcurrency, "max-concurrency", 0, "concurrent calls per data plane (default 64)")
	_ = cmd.MarkFlagRequired("url")
	cmd.MarkFlagsMutuallyExclusive("prefix", "no-prefix")
	cmd.MarkFlagsMutuallyExclusive("bearer-secret", "header-secret")
	return cmd
}

func (a *app) upstreamList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List upstreams",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				ups, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.Upstream, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListUpstreamsResponse], error) {
						return s.Upstream.ListUpstreams(ctx, connect.NewRequest(&adminv1.ListUpstreamsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetUpstreams(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListUpstreamsResponse{Upstreams: ups})
				}
				rows := make([][]string, 0, len(ups))
				for _, u := range ups {
					rows = append(rows, []string{u.GetMeta().GetName(), enumLabel(u.GetProtocol().String(), "PROTOCOL_"),
						u.GetUrl(), prefixText(u), credentialText(u.GetCredential()), fmt.Sprint(u.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "PROTOCOL", "URL", "PREFIX", "CREDENTIAL", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) upstreamGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an upstream",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetUpstreamResponse], error) {
					return s.Upstream.GetUpstream(ctx, connect.NewRequest(&adminv1.GetUpstreamRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return printUpstream(p, resp.GetUpstream())
			})
		},
	}
}

func (a *app) upstreamRemove() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an upstream (refused while tool pins of it exist)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteUpstreamResponse], error) {
					return s.Upstream.DeleteUpstream(ctx, connect.NewRequest(&adminv1.DeleteUpstreamRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("upstream %q removed", args[0])
			})
		},
	}
}

func printUpstream(p *printer, u *configv1.Upstream) error {
	timeout := ""
	if d := u.GetResilience().GetTimeout(); d != nil {
		timeout = d.AsDuration().String()
	}
	var resilience []string
	if r := u.GetResilience(); r != nil && r.MaxRetries != nil {
		resilience = append(resilience, fmt.Sprintf("max retries %d", r.GetMaxRetries()))
	}
	if n := u.GetResilience().GetBreakerFailures(); n != 0 {
		resilience = append(resilience, fmt.Sprintf("breaker after %d failures", n))
	}
	if d := u.GetResilience().GetBreakerOpen(); d != nil {
		resilience = append(resilience, "breaker open "+d.AsDuration().String())
	}
	if n := u.GetLimits().GetMaxConcurrency(); n != 0 {
		resilience = append(resilience, fmt.Sprintf("max concurrency %d", n))
	}
	if len(resilience) == 0 {
		resilience = []string{"defaults"}
	}
	fs := append(metaFields(u.GetMeta(), "Name"),
		field{"Protocol", enumLabel(u.GetProtocol().String(), "PROTOCOL_")},
		field{"URL", u.GetUrl()},
		field{"Tool prefix", prefixText(u)},
		field{"Credential", credentialText(u.GetCredential())},
		field{"Per-call timeout", timeout},
		field{"Resilience", strings.Join(resilience, ", ")},
		field{"Allow link-local", boolText(u.GetAllowLinkLocal())},
	)
	switch {
	case u.GetLlm() != nil:
		l := u.GetLlm()
		fs = append(fs, field{"Provider", enumLabel(l.GetProvider().String(), "LLM_PROVIDER_")}, field{"Models", modelsText(u)})
	case u.GetProtocol() == configv1.Protocol_PROTOCOL_A2A:
		path := u.GetA2ACardPath()
		if path == "" {
			path = "/.well-known/agent-card.json"
		}
		fs = append(fs, field{"Agent card path", path})
	default:
		fs = append(fs, field{"MCP era", eraText(u.GetMcpEra())})
	}
	return p.fields(append(fs, metaTrailer(u.GetMeta())...))
}

func eraText(e configv1.McpEra) string {
	if e == configv1.McpEra_MCP_ERA_UNSPECIFIED {
		return "detect"
	}
	return enumLabel(e.String(), "MCP_ERA_")
}

func prefixText(u *configv1.Upstream) string {
	switch {
	case u.ToolPrefix == nil:
		return u.GetMeta().GetName()
	case *u.ToolPrefix == "":
		return "(none)"
	}
	return *u.ToolPrefix
}

func credentialText(c *configv1.UpstreamCredential) string {
	switch k := c.GetKind().(type) {
	case *configv1.UpstreamCredential_Bearer:
		return "bearer secret " + k.Bearer.GetSecret()
	case *configv1.UpstreamCredential_Header:
		return fmt.Sprintf("header %s from secret %s", k.Header.GetHeader(), k.Header.GetSecret())
	case *configv1.UpstreamCredential_OauthClientCredentials:
		return "oauth client credentials (" + k.OauthClientCredentials.GetTokenUrl() + ")"
	}
	return "none"
}

// llmSettings builds an LLM upstream's settings from gwctl's flags.
func llmSettings(provider configv1.LlmProvider, models, aliases []string, outputCap int64) (*configv1.LlmUpstream, error) {
	l := &configv1.LlmUpstream{Provider: provider}
	byID := map[string]*configv1.LlmModel{}
	for _, id := range models {
		m := &configv1.LlmModel{Id: id, OutputCap: outputCap}
		byID[id] = m
		l.Models = append(l.Models, m)
	}
	for _, a := range aliases {
		name, id, ok := strings.Cut(a, "=")
		m := byID[id]
		if !ok || name == "" || m == nil {
			return nil, fmt.Errorf("invalid --alias %q: want NAME=MODEL, MODEL one of the --model values", a)
		}
		m.Aliases = append(m.Aliases, name)
	}
	return l, nil
}

// modelsText lists an LLM upstream's models as agents name them.
func modelsText(u *configv1.Upstream) string {
	prefix := u.GetMeta().GetName()
	if u.ToolPrefix != nil {
		prefix = u.GetToolPrefix()
	}
	var out []string
	for _, m := range u.GetLlm().GetModels() {
		name := m.GetId()
		if prefix != "" {
			name = prefix + "/" + name
		}
		if len(m.GetAliases()) > 0 {
			name += " (" + strings.Join(m.GetAliases(), ", ") + ")"
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, ", ")
}
