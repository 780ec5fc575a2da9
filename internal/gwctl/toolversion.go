package gwctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
)

// This file holds the commands that move agents between versions of a
// tool: versions, assign, set-default, deprecate, diff and callers.

// pinFlags are the --upstream and --tool flags every version command has.
type pinFlags struct{ upstream, tool string }

func (f *pinFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.upstream, "upstream", "", "upstream name")
	cmd.Flags().StringVar(&f.tool, "tool", "", "tool name as the upstream reports it")
	_ = cmd.MarkFlagRequired("upstream")
	_ = cmd.MarkFlagRequired("tool")
}

func (a *app) toolVersions() *cobra.Command {
	var pf pinFlags
	cmd := &cobra.Command{
		Use:   "versions --upstream U --tool T",
		Short: "List a tool's versions: the default, who is assigned each, deprecations",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetToolPinResponse], error) {
					return s.Tool.GetToolPin(ctx, connect.NewRequest(&adminv1.GetToolPinRequest{Upstream: pf.upstream, Tool: pf.tool}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp.GetPin())
				}
				return p.table([]string{"VERSION", "DEFAULT", "ASSIGNED", "CLASS", "HASH", "APPROVED", "DEPRECATION"}, versionRows(resp.GetPin(), time.Now()))
			})
		},
	}
	pf.register(cmd)
	return cmd
}

// versionRows are the rows of "tool versions".
func versionRows(pin *configv1.ToolPin, now time.Time) [][]string {
	def := toolversion.Default(pin).GetVersion()
	rows := make([][]string, 0, len(pin.GetVersions()))
	for _, v := range pin.GetVersions() {
		n := v.GetVersion()
		mark := ""
		if n == def {
			mark = "*"
		}
		as, _ := toolversion.Users(pin, n)
		var who []string
		for _, x := range as {
			if x.GetTeam() != "" {
				who = append(who, "team "+x.GetTeam())
			} else {
				who = append(who, "agent "+x.GetAgent())
			}
		}
		rows = append(rows, []string{fmt.Sprint(n), mark, strings.Join(who, ", "), enumLabel(v.GetClass().String(), "TOOL_CLASS_"),
			truncate(v.GetDefinitionHash(), 20), timeText(v.GetApproveTime()), deprecationText(v, now)})
	}
	return rows
}

// deprecationText says where a version stands against its sunset.
func deprecationText(v *configv1.ToolVersion, now time.Time) string {
	switch {
	case !toolversion.Deprecated(v):
		return "-"
	case toolversion.Retired(v, now):
		return "retired " + timeText(v.GetSunsetTime())
	}
	return "sunset " + timeText(v.GetSunsetTime())
}

func (a *app) toolAssign() *cobra.Command {
	var pf pinFlags
	var version int64
	var team, agent string
	cmd := &cobra.Command{
		Use:   "assign --upstream U --tool T --version N (--team TEAM | --agent AGENT)",
		Short: "Put a team or an agent on a version of a tool (--version 0: back to the default)",
		Long: `Puts a team or one agent on a version of a tool: their tools/list shows
that version's definition and their calls are validated against its input
schema. An agent's own assignment wins over its team's. --version 0 removes
the assignment, so they get the default again.

The version must be compatible with the definition the upstream serves now
(the control plane asks the upstream): every input it accepts must be
accepted by the live definition, and every output the live definition
promises must fit it. An incompatible version is refused with the breaking
differences (see "gwctl tool diff").`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (team == "") == (agent == "") {
				return &usageError{cmd: cmd, err: errors.New("name exactly one of --team and --agent")}
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				req := &adminv1.AssignToolVersionRequest{Upstream: pf.upstream, Tool: pf.tool, Version: version, Team: team, Agent: agent}
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.AssignToolVersionResponse], error) {
					return s.Tool.AssignToolVersion(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				who := "team " + team
				if agent != "" {
					who = "agent " + agent
				}
				if version == 0 {
					return p.linef("%s now gets the default version of %s/%s (%d)", who, pf.upstream, pf.tool, toolversion.Default(resp.GetPin()).GetVersion())
				}
				return p.linef("%s is on version %d of %s/%s (%s with %s)", who, version, pf.upstream, pf.tool,
					verdictText(resp.GetCompatibility().GetVerdict()), resp.GetCompatibility().GetToLabel())
			})
		},
	}
	pf.register(cmd)
	cmd.Flags().Int64Var(&version, "version", 0, "the version; 0 removes the assignment")
	cmd.Flags().StringVar(&team, "team", "", "the team to assign")
	cmd.Flags().StringVar(&agent, "agent", "", "the agent to assign")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

func (a *app) toolSetDefault() *cobra.Command {
	var pf pinFlags
	var version int64
	cmd := &cobra.Command{
		Use:   "set-default --upstream U --tool T --version N",
		Short: "Make a version of a tool the default: what every agent no assignment names gets",
		Long: `Makes a version the default: agents that no assignment names (neither their
own nor their team's) are served it. Held to the upstream's live definition
like "tool assign".`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				req := &adminv1.SetDefaultToolVersionRequest{Upstream: pf.upstream, Tool: pf.tool, Version: version}
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetDefaultToolVersionResponse], error) {
					return s.Tool.SetDefaultToolVersion(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("version %d is the default of %s/%s (%s with %s)", version, pf.upstream, pf.tool,
					verdictText(resp.GetCompatibility().GetVerdict()), resp.GetCompatibility().GetToLabel())
			})
		},
	}
	pf.register(cmd)
	cmd.Flags().Int64Var(&version, "version", 0, "the version")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

func (a *app) toolDeprecate() *cobra.Command {
	var pf pinFlags
	var version int64
	var sunset, message string
	var cancel bool
	cmd := &cobra.Command{
		Use:   "deprecate --upstream U --tool T --version N --sunset DATE [--message TEXT] | --cancel",
		Short: "Deprecate a version of a tool until a sunset, after which its calls are refused",
		Long: `Deprecates a version: until the sunset, calls on it succeed with a
deprecation notice (in the MCP result's _meta under "io.portcullis/deprecation",
and as Deprecation and Sunset HTTP headers) and are flagged in the audit
record; from the sunset on they are refused with reason tool_version_retired
and a message naming the version to move to. Data planes enforce the sunset by
their own clock, also when they cannot reach the control plane.

--sunset is a time (RFC 3339, 2026-01-31T00:00:00Z), a date (2026-01-31,
midnight UTC) or a duration from now (30d, 12h). "gwctl tool callers" lists
the agents still calling the version. --cancel lifts the deprecation.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &adminv1.DeprecateToolVersionRequest{Upstream: pf.upstream, Tool: pf.tool, Version: version, Message: message, Cancel: cancel}
			switch {
			case cancel && (sunset != "" || message != ""):
				return &usageError{cmd: cmd, err: errors.New("--cancel takes no --sunset or --message")}
			case !cancel && sunset == "":
				return &usageError{cmd: cmd, err: errors.New("--sunset is required (or --cancel)")}
			case !cancel:
				t, err := parseSunset(sunset, time.Now())
				if err != nil {
					return &usageError{cmd: cmd, err: err}
				}
				req.SunsetTime = timestamppb.New(t)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeprecateToolVersionResponse], error) {
					return s.Tool.DeprecateToolVersion(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				if cancel {
					return p.linef("version %d of %s/%s is no longer deprecated", version, pf.upstream, pf.tool)
				}
				line := fmt.Sprintf("version %d of %s/%s is deprecated; calls on it are refused from %s", version, pf.upstream, pf.tool, timeText(req.GetSunsetTime()))
				if r := resp.GetReplacement(); r != 0 {
					line += fmt.Sprintf(" (callers are told to move to version %d)", r)
				} else {
					line += " (no other version replaces it yet)"
				}
				if err := p.linef("%s", line); err != nil {
					return err
				}
				return p.linef("see who still calls it: gwctl tool callers --upstream %s --tool %s --version %d", pf.upstream, pf.tool, version)
			})
		},
	}
	pf.register(cmd)
	cmd.Flags().Int64Var(&version, "version", 0, "the version")
	cmd.Flags().StringVar(&sunset, "sunset", "", "when calls on the version stop being served: RFC 3339 time, date, or duration from now")
	cmd.Flags().StringVar(&message, "message", "", "told to callers with the notice and the refusal")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "cancel the version's deprecation")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

// parseSunset reads --sunset: an RFC 3339 time, a date (midnight UTC), or
// a duration from now.
func parseSunset(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := parseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("invalid --sunset %q: want an RFC 3339 time (2026-01-31T00:00:00Z), a date (2026-01-31) or a duration from now (30d)", s)
}

func (a *app) toolDiff() *cobra.Command {
	var pf pinFlags
	cmd := &cobra.Command{
		Use:   "diff --upstream U --tool T FROM TO",
		Short: "Compare a version callers are on with another version or the live definition",
		Long: `Compares version FROM (the one callers are on) with version TO, or with the
definition the upstream serves now when TO is "live". Every input valid under
FROM must be valid under TO, and every output valid under TO's outputSchema
must be valid under FROM's. Prints the differences, breaking ones first, and
exits 1 when they break FROM's callers (or the check cannot tell: a JSON
Schema keyword it does not understand counts as breaking).`,
		Args: exactArgs("FROM", "TO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || from <= 0 {
				return &usageError{cmd: cmd, err: fmt.Errorf("FROM %q is not a version number", args[0])}
			}
			var to int64
			if args[1] != "live" {
				if to, err = strconv.ParseInt(args[1], 10, 64); err != nil || to <= 0 {
					return &usageError{cmd: cmd, err: fmt.Errorf("TO %q is neither a version number nor \"live\"", args[1])}
				}
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				req := &adminv1.DiffToolVersionsRequest{Upstream: pf.upstream, Tool: pf.tool, FromVersion: from, ToVersion: to}
				resp, err := client.ReadWithin(ctx, c, discoverAttempt, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DiffToolVersionsResponse], error) {
					return s.Tool.DiffToolVersions(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				compat := resp.GetCompatibility()
				if p.structured() {
					err = p.message(resp)
				} else {
					err = printCompatibility(p, compat)
				}
				if err != nil {
					return err
				}
				if v := compat.GetVerdict(); v != adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_COMPATIBLE {
					return fmt.Errorf("%s is %s with %s: its callers would break", compat.GetFromLabel(), verdictText(v), compat.GetToLabel())
				}
				return nil
			})
		},
	}
	pf.register(cmd)
	return cmd
}

// printCompatibility prints a verdict line and the differences.
func printCompatibility(p *printer, c *adminv1.ToolCompatibility) error {
	if err := p.linef("%s → %s: %s", c.GetFromLabel(), c.GetToLabel(), verdictText(c.GetVerdict())); err != nil {
		return err
	}
	if len(c.GetDifferences()) == 0 {
		return p.linef("no differences")
	}
	rows := make([][]string, 0, len(c.GetDifferences()))
	for _, d := range c.GetDifferences() {
		where := d.GetSchema()
		if where == "" {
			where = "definition"
		}
		path := d.GetPath()
		if path == "" {
			path = "/"
		}
		rows = append(rows, []string{enumLabel(d.GetEffect().String(), "DIFFERENCE_EFFECT_"), where, path, d.GetText()})
	}
	if err := p.table([]string{"EFFECT", "SCHEMA", "PATH", "DIFFERENCE"}, rows); err != nil {
		return err
	}
	if n := c.GetOmitted(); n > 0 {
		return p.linef("(%d more differences not shown)", n)
	}
	return nil
}

// verdictText is a verdict in lower case ("compatible").
func verdictText(v adminv1.CompatibilityVerdict) string {
	return enumLabel(v.String(), "COMPATIBILITY_VERDICT_")
}

func (a *app) toolCallers() *cobra.Command {
	var pf pinFlags
	var version int64
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "callers --upstream U --tool T [--version N] [--since 30d]",
		Short: "List the agents that called each version of a tool, from the audit store",
		Long: `Lists, per version, the agents that called the tool since --since (default
30 days), from the control plane's audit store: whom to chase before a
deprecated version's sunset. RETIRED counts their calls refused because the
version was past its sunset.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				req := &adminv1.ListToolCallersRequest{Upstream: pf.upstream, Tool: pf.tool, Version: version,
					Since: timestamppb.New(time.Now().Add(-since))}
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListToolCallersResponse], error) {
					return s.Tool.ListToolCallers(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetCallers()))
				for _, x := range resp.GetCallers() {
					v := fmt.Sprint(x.GetVersion())
					if x.GetVersion() == 0 {
						v = "?"
					}
					rows = append(rows, []string{v, x.GetAgent(), fmt.Sprint(x.GetCalls()), fmt.Sprint(x.GetRetired()), timeText(x.GetLastCall())})
				}
				if err := p.table([]string{"VERSION", "AGENT", "CALLS", "RETIRED", "LAST-CALL"}, rows); err != nil {
					return err
				}
				if resp.GetTruncated() {
					return p.linef("(the scan stopped at its bound after %d call records; older calls are not counted)", resp.GetRecords())
				}
				return nil
			})
		},
	}
	pf.register(cmd)
	cmd.Flags().Int64Var(&version, "version", 0, "only calls of this version")
	cmd.Flags().Var(newDurationFlag(&since, 30*24*time.Hour), "since", "how far back to look (e.g. 30d, 12h)")
	return cmd
}
