package gwctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) rateLimitCommand() *cobra.Command {
	cmd := group("ratelimit", "Manage fleet-wide rate and concurrency limits per agent, team, user, upstream or tool")
	cmd.AddCommand(a.rateLimitSet(), a.rateLimitGet(), a.rateLimitList(), a.rateLimitDelete())
	return cmd
}

func (a *app) rateLimitSet() *cobra.Command {
	var (
		meta                metaFlags
		key, rateText, mode string
		match               []string
		burst, inFlight     int64
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--key agent|team|user|upstream|tool|agent+tool|…] [--rate N/s|N/min|N/h] [--burst N] [--max-in-flight N] [--match agent=…,team=…,upstream=…,tool=…] [--mode enforce|shadow]",
		Short: "Create or replace a rate limit",
		Long: `Sets a rate limit: how many calls each key may make per second, minute or
hour (--rate), how many may run back to back above that rate (--burst,
default one period's worth), and how many may be in flight at once
(--max-in-flight), across every data plane together. --key says what the
calls sharing one bucket have in common (parts joined with +; none: every
matching call shares one). --match narrows which calls count (repeatable;
name=value pairs, comma-separated). --mode shadow counts the calls the
limit would refuse (metrics, audit) and refuses none.

The control-plane leader leases each data plane a share of every active
key's rate and in-flight slots in proportion to the demand the data planes
report; each enforces its share locally, so no call waits on the network.
A refused call gets reason rate_limited and when to retry (MCP: _meta;
HTTP: 429 with Retry-After and RateLimit headers). The README states the
overshoot bound.

  gwctl ratelimit set per-agent-tool --key agent+tool --rate 100/min --burst 20
  gwctl ratelimit set search-slots --key tool --max-in-flight 8 --match tool=search__query`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			r := &configv1.RateLimit{Meta: m, Burst: burst, MaxInFlight: inFlight}
			if r.Key, err = parseRateLimitKey(key); err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			if rateText != "" {
				if r.Rate, r.Period, err = parseRate(rateText); err != nil {
					return &usageError{cmd: cmd, err: err}
				}
			}
			if rateText == "" && inFlight == 0 {
				return &usageError{cmd: cmd, err: errors.New("give --rate, --max-in-flight or both")}
			}
			switch mode {
			case "", "enforce":
				r.Mode = configv1.RateLimitMode_RATE_LIMIT_MODE_ENFORCE
			case "shadow":
				r.Mode = configv1.RateLimitMode_RATE_LIMIT_MODE_SHADOW
			default:
				return &usageError{cmd: cmd, err: fmt.Errorf("--mode %q: want enforce or shadow", mode)}
			}
			if err := parseRateLimitMatch(r, match); err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetRateLimitResponse], error) {
					return s.RateLimit.SetRateLimit(ctx, connect.NewRequest(&adminv1.SetRateLimitRequest{RateLimit: r}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("rate limit %q set: %s", args[0], rateLimitText(resp.GetRateLimit()))
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "what the calls sharing one bucket have in common: agent, team, user, upstream, tool, joined with + (default: one bucket)")
	f.StringVar(&rateText, "rate", "", "calls per period per key, fleet-wide: N/s, N/min or N/h")
	f.Int64Var(&burst, "burst", 0, "calls that may run back to back above the rate (default: one period's worth)")
	f.Int64Var(&inFlight, "max-in-flight", 0, "calls per key in flight at once, fleet-wide (0: no limit)")
	f.StringArrayVar(&match, "match", nil, "count only matching calls: agent=…,team=…,upstream=…,tool=… (repeatable)")
	f.StringVar(&mode, "mode", "enforce", "enforce, or shadow: count would-be refusals and refuse nothing")
	return cmd
}

// parseRateLimitKey parses "agent+tool".
func parseRateLimitKey(s string) ([]configv1.RateLimitKey, error) {
	if s == "" {
		return nil, nil
	}
	var out []configv1.RateLimitKey
	for _, part := range strings.Split(s, "+") {
		v, ok := configv1.RateLimitKey_value["RATE_LIMIT_KEY_"+strings.ToUpper(strings.TrimSpace(part))]
		if !ok || v == 0 {
			return nil, fmt.Errorf("--key %q: each part must be agent, team, user, upstream or tool", s)
		}
		out = append(out, configv1.RateLimitKey(v))
	}
	return out, nil
}

// parseRate parses "100/min".
func parseRate(s string) (int64, configv1.RateLimitPeriod, error) {
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if !ok || err != nil || count <= 0 {
		return 0, 0, fmt.Errorf("--rate %q: want a positive count per period, such as 100/min", s)
	}
	switch strings.TrimSpace(per) {
	case "s", "sec", "second":
		return count, configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_SECOND, nil
	case "m", "min", "minute":
		return count, configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE, nil
	case "h", "hour":
		return count, configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_HOUR, nil
	}
	return 0, 0, fmt.Errorf("--rate %q: the period must be s, min or h", s)
}

// parseRateLimitMatch adds "--match tool=x,team=y" to r.
func parseRateLimitMatch(r *configv1.RateLimit, match []string) error {
	for _, m := range match {
		for _, pair := range strings.Split(m, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || v == "" {
				return fmt.Errorf("--match %q: want name=value pairs (agent, team, upstream, tool)", m)
			}
			switch k {
			case "agent":
				r.Agents = append(r.Agents, v)
			case "team":
				r.Teams = append(r.Teams, v)
			case "upstream":
				r.Upstreams = append(r.Upstreams, v)
			case "tool":
				r.Tools = append(r.Tools, v)
			default:
				return fmt.Errorf("--match %q: %q is not agent, team, upstream or tool", m, k)
			}
		}
	}
	return nil
}

// rateLimitText says what a rate limit allows.
func rateLimitText(r *configv1.RateLimit) string {
	var parts []string
	if r.GetRate() > 0 {
		per := map[configv1.RateLimitPeriod]string{
			configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_SECOND: "s", configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE: "min", configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_HOUR: "h",
		}[r.GetPeriod()]
		s := fmt.Sprintf("%d/%s", r.GetRate(), per)
		if r.GetBurst() > 0 {
			s += fmt.Sprintf(" burst %d", r.GetBurst())
		}
		parts = append(parts, s)
	}
	if r.GetMaxInFlight() > 0 {
		parts = append(parts, fmt.Sprintf("%d in flight", r.GetMaxInFlight()))
	}
	key := make([]string, 0, len(r.GetKey()))
	for _, k := range r.GetKey() {
		key = append(key, enumLabel(k.String(), "RATE_LIMIT_KEY_"))
	}
	per := "in total"
	if len(key) > 0 {
		per = "per " + strings.Join(key, "+")
	}
	s := strings.Join(parts, ", ") + " " + per
	if r.GetMode() == configv1.RateLimitMode_RATE_LIMIT_MODE_SHADOW {
		s += " (shadow)"
	}
	return s
}

// rateLimitMatch says which calls a rate limit counts.
func rateLimitMatch(r *configv1.RateLimit) string {
	var m []string
	for _, l := range []struct {
		name   string
		values []string
	}{{"agent", r.GetAgents()}, {"team", r.GetTeams()}, {"upstream", r.GetUpstreams()}, {"tool", r.GetTools()}} {
		if len(l.values) > 0 {
			m = append(m, l.name+" "+strings.Join(l.values, ","))
		}
	}
	if len(m) == 0 {
		return "every call"
	}
	return strings.Join(m, "; ")
}

func (a *app) rateLimitGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a rate limit",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetRateLimitResponse], error) {
					return s.RateLimit.GetRateLimit(ctx, connect.NewRequest(&adminv1.GetRateLimitRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				r := resp.GetRateLimit()
				fs := append(metaFields(r.GetMeta(), "Name"), field{"Limit", rateLimitText(r)}, field{"Counts", rateLimitMatch(r)})
				return p.fields(append(fs, metaTrailer(r.GetMeta())...))
			})
		},
	}
}

func (a *app) rateLimitList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List rate limits",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				items, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.RateLimit, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListRateLimitsResponse], error) {
						return s.RateLimit.ListRateLimits(ctx, connect.NewRequest(&adminv1.ListRateLimitsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetRateLimits(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListRateLimitsResponse{RateLimits: items})
				}
				rows := make([][]string, 0, len(items))
				for _, r := range items {
					rows = append(rows, []string{r.GetMeta().GetName(), rateLimitText(r), rateLimitMatch(r), fmt.Sprint(r.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "LIMIT", "COUNTS", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) rateLimitDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a rate limit",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteRateLimitResponse], error) {
					return s.RateLimit.DeleteRateLimit(ctx, connect.NewRequest(&adminv1.DeleteRateLimitRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("rate limit %q deleted", args[0])
			})
		},
	}
}
