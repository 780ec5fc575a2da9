package gwctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/access"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) policyHistory() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List the kept versions of a policy set: who applied each, when and why",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListPolicyVersionsResponse], error) {
					return s.Policy.ListPolicyVersions(ctx, connect.NewRequest(&adminv1.ListPolicyVersionsRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetVersions()))
				for _, v := range resp.GetVersions() {
					mark := ""
					if v.GetVersion() == resp.GetActiveVersion() {
						mark = "*"
					}
					origin := v.GetMethod()
					switch {
					case v.GetRollout() != "":
						origin = "rollout " + v.GetRollout()
					case v.GetRestores() != 0:
						origin = fmt.Sprintf("rollback to %d", v.GetRestores())
					}
					rows = append(rows, []string{strconv.FormatInt(v.GetVersion(), 10) + mark, timeText(v.GetTime()), v.GetActor(),
						strconv.Itoa(len(v.GetPolicyIds())), origin, v.GetMessage()})
				}
				return p.table([]string{"VERSION", "APPLIED", "BY", "POLICIES", "HOW", "MESSAGE"}, rows)
			})
		},
	}
}

// fetchVersion reads one kept version of a set (0: the active one).
func fetchVersion(ctx context.Context, c *client.Client, name string, version int64) (*adminv1.GetPolicyVersionResponse, error) {
	return client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetPolicyVersionResponse], error) {
		return s.Policy.GetPolicyVersion(ctx, connect.NewRequest(&adminv1.GetPolicyVersionRequest{Name: name, Version: version}))
	})
}

func (a *app) policyDiff() *cobra.Command {
	return &cobra.Command{
		Use:   "diff NAME A B",
		Short: "Compare two kept versions of a policy set: by policy id, then line by line",
		Long: `Compares versions A and B of a policy set (version numbers, or "active").
First by policy id — added, removed, changed (their canonical Cedar text
differs) — then as a unified diff of the sources. Exits 0 whether or not
they differ.`,
		Args: exactArgs("NAME", "A", "B"),
		RunE: func(cmd *cobra.Command, args []string) error {
			va, err := versionArg(args[1])
			if err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			vb, err := versionArg(args[2])
			if err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				ra, err := fetchVersion(ctx, c, args[0], va)
				if err != nil {
					return err
				}
				rb, err := fetchVersion(ctx, c, args[0], vb)
				if err != nil {
					return err
				}
				added, removed, changed, err := diffPolicies(args[0], ra.GetVersion(), rb.GetVersion())
				if err != nil {
					return err
				}
				text := lineDiff(fmt.Sprintf("%s version %d", args[0], ra.GetVersion().GetVersion()), fmt.Sprintf("%s version %d", args[0], rb.GetVersion().GetVersion()),
					ra.GetVersion().GetSource(), rb.GetVersion().GetSource())
				if p.structured() {
					return p.value(map[string]any{"added": added, "removed": removed, "changed": changed, "diff": text})
				}
				for _, l := range []struct {
					what string
					ids  []string
				}{{"added", added}, {"removed", removed}, {"changed", changed}} {
					if len(l.ids) > 0 {
						if err := p.linef("%-8s %s", l.what+":", strings.Join(l.ids, ", ")); err != nil {
							return err
						}
					}
				}
				if text == "" {
					return p.linef("versions %d and %d are the same", ra.GetVersion().GetVersion(), rb.GetVersion().GetVersion())
				}
				return p.text(text)
			})
		},
	}
}

// versionArg reads a version argument: a number, or "active" (0).
func versionArg(s string) (int64, error) {
	if s == "active" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("version %q: want a version number or active", s)
	}
	return v, nil
}

// diffPolicies compares two versions by policy id.
func diffPolicies(set string, a, b *configv1.PolicyVersion) (added, removed, changed []string, err error) {
	pa, err := cedarschema.PolicyTexts(set, a.GetFilename(), []byte(a.GetSource()))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("version %d: %w", a.GetVersion(), err)
	}
	pb, err := cedarschema.PolicyTexts(set, b.GetFilename(), []byte(b.GetSource()))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("version %d: %w", b.GetVersion(), err)
	}
	old := map[string]string{}
	for _, p := range pa {
		old[p.ID] = p.Text
	}
	seen := map[string]bool{}
	for _, p := range pb {
		seen[p.ID] = true
		switch t, ok := old[p.ID]; {
		case !ok:
			added = append(added, p.ID)
		case t != p.Text:
			changed = append(changed, p.ID)
		}
	}
	for _, p := range pa {
		if !seen[p.ID] {
			removed = append(removed, p.ID)
		}
	}
	return added, removed, changed, nil
}

func (a *app) policyRollback() *cobra.Command {
	var (
		to      int64
		message string
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME [--to VERSION]",
		Short: "Make an earlier version of a policy set active again, everywhere",
		Long: `Writes a kept version (--to; default: the one before the active version) as
the set's next version, in one admin write: every connected data plane has
it within one propagation. The write is audited like any other; the
history records which version it restores. Refused while the set is in a
rollout (use gwctl rollout rollback).`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &adminv1.RollbackPolicySetRequest{Name: args[0], ToVersion: to, Message: message}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.RollbackPolicySetResponse], error) {
					return s.Policy.RollbackPolicySet(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				ps := resp.GetPolicySet()
				return p.linef("policy set %q rolled back to version %d: now version %d (config version %d)", args[0], resp.GetRestored(), ps.GetVersion(), ps.GetMeta().GetRevision())
			})
		},
	}
	cmd.Flags().Int64Var(&to, "to", 0, "the kept version to restore (default: the one before the active version)")
	cmd.Flags().StringVar(&message, "message", "", "why, kept in the history")
	return cmd
}

func (a *app) policyReplay() *cobra.Command {
	var (
		file, from, to, agent, tool string
		examples                    int32
	)
	cmd := &cobra.Command{
		Use:   "replay NAME -f CANDIDATE.cedar [--from T1] [--to T2] [--agent A] [--tool T]",
		Short: "Decide recorded calls with a candidate version; exit 1 when any decision would change",
		Long: `Decides the call records of a time window in the control plane's audit store
with a candidate version of policy set NAME (in place of the active one)
through the gateway's policy engine and today's configuration, and reports:
the calls whose decision would change (allow→deny, deny→allow) with
examples, the candidate's policies that no call matched (dead rules), and
the calls that cannot be judged, with the reason (a value the candidate
reads was redacted or cut from the record, the agent or tool no longer
exists, the candidate reads the user's groups). --from and --to are RFC
3339 times or durations before now (24h). Exits 1 when any decision would
change, so it can gate a change in CI.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			source, filename, err := a.readSource(file)
			if err != nil {
				return err
			}
			req := &adminv1.ReplayPolicySetRequest{Name: args[0], Source: string(source), Filename: filename, Agent: agent, Tool: tool, MaxExamples: examples}
			now := time.Now()
			if req.From, err = whenFlag("--from", from, now); err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			if req.To, err = whenFlag("--to", to, now); err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ReplayPolicySetResponse], error) {
					return s.Policy.ReplayPolicySet(ctx, connect.NewRequest(req))
				})
				if connect.CodeOf(err) == connect.CodeInvalidArgument {
					var ce *connect.Error
					errors.As(err, &ce)
					return fmt.Errorf("the candidate was refused:\n%s", ce.Message())
				}
				if err != nil {
					return err
				}
				if p.structured() {
					err = p.message(resp)
				} else {
					err = printReplay(p, resp)
				}
				if err != nil {
					return err
				}
				if n := resp.GetAllowToDeny() + resp.GetDenyToAllow(); n > 0 {
					return fmt.Errorf("%d recorded decisions would change (%d allow→deny, %d deny→allow)", n, resp.GetAllowToDeny(), resp.GetDenyToAllow())
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "the candidate's Cedar source (- for stdin)")
	f.StringVar(&from, "from", "", "records at or after this time (RFC 3339, or a duration before now: 24h)")
	f.StringVar(&to, "to", "", "records before this time (RFC 3339, or a duration before now)")
	f.StringVar(&agent, "agent", "", "only this agent's calls")
	f.StringVar(&tool, "tool", "", "only calls of this tool (<prefix>__<tool>)")
	f.Int32Var(&examples, "examples", 0, "examples per kind of change and per reason (default 10, at most 100)")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// whenFlag reads a time flag: RFC 3339, or a duration before now; nil
// when empty.
func whenFlag(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return timestamppb.New(t), nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(v, "-")); err == nil && d >= 0 {
		return timestamppb.New(now.Add(-d)), nil
	}
	return nil, fmt.Errorf("%s %q: want an RFC 3339 time (2026-11-26T10:00:00Z) or a duration before now (24h)", flag, v)
}

func printReplay(p *printer, r *adminv1.ReplayPolicySetResponse) error {
	lines := []string{
		fmt.Sprintf("%d call records (configuration version %d): %d judged, %d refused before any policy ran, %d cannot be judged",
			r.GetRecords(), r.GetConfigVersion(), r.GetJudged(), r.GetUndecided(), r.GetRecords()-r.GetJudged()-r.GetUndecided()),
		fmt.Sprintf("decisions that would change: %d allow→deny, %d deny→allow", r.GetAllowToDeny(), r.GetDenyToAllow()),
	}
	if r.GetTruncated() {
		lines = append(lines, "the scan stopped at its bound before the end of the window: narrow --from/--to")
	}
	for _, l := range lines {
		if err := p.linef("%s", l); err != nil {
			return err
		}
	}
	if len(r.GetChangeCounts()) > 0 {
		rows := make([][]string, 0, len(r.GetChangeCounts()))
		for _, c := range r.GetChangeCounts() {
			rows = append(rows, []string{c.GetAgent(), c.GetTool(), strconv.FormatUint(c.GetAllowToDeny(), 10), strconv.FormatUint(c.GetDenyToAllow(), 10)})
		}
		if err := p.linef("\nchanges:"); err != nil {
			return err
		}
		if err := p.table([]string{"AGENT", "TOOL", "ALLOW→DENY", "DENY→ALLOW"}, rows); err != nil {
			return err
		}
	}
	if len(r.GetChanges()) > 0 {
		if err := p.linef("\nexamples:"); err != nil {
			return err
		}
		rows := make([][]string, 0, len(r.GetChanges()))
		for _, c := range r.GetChanges() {
			rows = append(rows, []string{timeText(c.GetTime()), fmt.Sprintf("%s#%d", c.GetDataplane(), c.GetSequence()), c.GetAgent(), c.GetTool(),
				c.GetRecorded() + " → " + c.GetCandidate(), strings.Join(c.GetCandidatePolicies(), ", ")})
		}
		if err := p.table([]string{"TIME", "RECORD", "AGENT", "TOOL", "DECISION", "CANDIDATE POLICIES"}, rows); err != nil {
			return err
		}
	}
	if len(r.GetDeadPolicies()) > 0 {
		if err := p.linef("\ndead rules (matched no judged call): %s", strings.Join(r.GetDeadPolicies(), ", ")); err != nil {
			return err
		}
	}
	if len(r.GetUnjudged()) > 0 {
		if err := p.linef("\ncannot be judged:"); err != nil {
			return err
		}
		rows := make([][]string, 0, len(r.GetUnjudged()))
		for _, u := range r.GetUnjudged() {
			rows = append(rows, []string{strconv.FormatUint(u.GetCount(), 10), u.GetReason(), strings.Join(u.GetExamples(), ", ")})
		}
		return p.table([]string{"CALLS", "REASON", "EXAMPLES"}, rows)
	}
	return nil
}

func (a *app) policyTests() *cobra.Command {
	cmd := group("tests", "Manage the test cases stored with a policy set (its rollouts must pass them)")
	cmd.AddCommand(a.policyTestsSet(), a.policyTestsShow(), a.policyTestsDelete())
	return cmd
}

func (a *app) policyTestsSet() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "set NAME -f CASES.yaml",
		Short: "Store test cases with a policy set, replacing any (same format as gwctl policy test)",
		Long: `Stores the cases of CASES.yaml (the format of "gwctl policy test") with policy
set NAME. A rollout of the set starts only when its candidate passes every
stored case; the control plane runs them with the candidate in place of
the active version.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("-f: %w", err)
			}
			parsed, err := access.ParseCases(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			cases := make([]*configv1.PolicyTestCase, 0, len(parsed))
			for i, c := range parsed {
				pc, err := storedCase(c)
				if err != nil {
					return fmt.Errorf("%s: case %d: %w", file, i+1, err)
				}
				cases = append(cases, pc)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetPolicyTestsResponse], error) {
					return s.Policy.SetPolicyTests(ctx, connect.NewRequest(&adminv1.SetPolicyTestsRequest{Name: args[0], Cases: cases}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("%d test cases stored with policy set %q", len(resp.GetTests().GetCases()), args[0])
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "cases file, YAML or JSON (required)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// storedCase turns a case of a cases file into the stored form.
func storedCase(c access.Case) (*configv1.PolicyTestCase, error) {
	pc := &configv1.PolicyTestCase{
		Name: c.Name, Agent: c.Agent, User: c.User, Email: c.Email, Groups: c.Groups, Tool: c.Tool,
		SourceIp: c.SourceIP, Protocol: c.Protocol, Degraded: c.Degraded, Expect: c.Expect,
		Policies: c.Policies, CheckPolicies: c.Policies != nil, Findings: c.Findings,
	}
	if args := strings.TrimSpace(string(c.Args)); args != "" && args != "null" {
		pc.ArgumentsJson = args
	}
	if c.Time != "" {
		t, err := time.Parse(time.RFC3339, c.Time)
		if err != nil {
			return nil, fmt.Errorf("time: %w", err)
		}
		pc.Time = timestamppb.New(t)
	}
	return pc, nil
}

func (a *app) policyTestsShow() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "List the test cases stored with a policy set",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetPolicyTestsResponse], error) {
					return s.Policy.GetPolicyTests(ctx, connect.NewRequest(&adminv1.GetPolicyTestsRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetTests().GetCases()))
				for i, c := range resp.GetTests().GetCases() {
					name := c.GetName()
					if name == "" {
						name = fmt.Sprintf("case %d", i+1)
					}
					rows = append(rows, []string{name, c.GetAgent(), c.GetTool(), c.GetArgumentsJson(), c.GetExpect()})
				}
				return p.table([]string{"NAME", "AGENT", "TOOL", "ARGUMENTS", "EXPECT"}, rows)
			})
		},
	}
}

func (a *app) policyTestsDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete the test cases stored with a policy set",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeletePolicyTestsResponse], error) {
					return s.Policy.DeletePolicyTests(ctx, connect.NewRequest(&adminv1.DeletePolicyTestsRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("test cases of policy set %q deleted", args[0])
			})
		},
	}
}

// shareText writes basis points as a percentage ("5%", "12.5%").
func shareText(bp uint32) string {
	s := strconv.FormatFloat(float64(bp)/100, 'f', -1, 64)
	return s + "%"
}

// parseShares reads "5%,25%,50%" into basis points.
func parseShares(s string) ([]uint32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		num, ok := strings.CutSuffix(part, "%")
		v, err := strconv.ParseFloat(num, 64)
		if !ok || err != nil || v <= 0 || v > 100 {
			return nil, fmt.Errorf("canary share %q: want a percentage above 0 and at most 100, such as 5%%", part)
		}
		bp := uint32(v*100 + 0.5)
		if float64(bp) != v*100 && (v*100-float64(bp) > 1e-9 || float64(bp)-v*100 > 1e-9) {
			return nil, fmt.Errorf("canary share %q: at most two decimals", part)
		}
		if len(out) > 0 && bp <= out[len(out)-1] {
			return nil, fmt.Errorf("canary shares must increase: %s after %s", part, shareText(out[len(out)-1]))
		}
		out = append(out, bp)
	}
	return out, nil
}
