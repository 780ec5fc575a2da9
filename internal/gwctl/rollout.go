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
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) rolloutCommand() *cobra.Command {
	cmd := group("rollout", "Stage a new version of a policy set: shadow, canary, complete, with automatic rollback")
	cmd.AddCommand(a.rolloutStart(), a.rolloutStatus(), a.rolloutList(),
		a.rolloutChange("promote", adminv1.RolloutAction_ROLLOUT_ACTION_PROMOTE, "Move a rollout to its next stage or canary step now"),
		a.rolloutChange("pause", adminv1.RolloutAction_ROLLOUT_ACTION_PAUSE, "Hold a rollout where it is (its gates still roll it back)"),
		a.rolloutChange("resume", adminv1.RolloutAction_ROLLOUT_ACTION_RESUME, "Let a paused rollout move on; the current stage's time starts over"),
		a.rolloutChange("abort", adminv1.RolloutAction_ROLLOUT_ACTION_ABORT, "End a rollout; the active version stays"),
		a.rolloutChange("rollback", adminv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK, "End a rollout; after it completed, the version it replaced becomes active again"),
	)
	return cmd
}

func (a *app) rolloutStart() *cobra.Command {
	var (
		file, canary, message string
		shadow, step          time.Duration
		gates                 []string
	)
	cmd := &cobra.Command{
		Use:   "start NAME -f CANDIDATE.cedar [--shadow DURATION] [--canary 5%,25%,50% --step DURATION] [--auto-rollback 'EXPR,…']",
		Short: "Start a staged rollout of a new version of policy set NAME",
		Long: `Stages a candidate version of policy set NAME:

  validated  the candidate is validated strictly against the gateway's schema
             and must pass the set's stored test cases (gwctl policy tests set),
             or the rollout is refused with the failing cases;
  shadow     (--shadow) every data plane evaluates the candidate beside the
             active version on every call and counts the differences; the
             active version still decides;
  canary     (--canary, --step) the candidate decides for a deterministic share
             of agents (by a hash of the rollout id and the agent's name: every
             data plane agrees, and an agent stays in as the share grows);
  complete   the candidate becomes the set's next version.

The controller on the control-plane leader moves the rollout on when a
stage's time is up, and rolls it back by itself when a gate is breached:
  deny_increase>1%   allow_to_deny>N   deny_to_allow>N   eval_errors>0
  upstream_errors_canary>2x baseline   min_calls=100 (judge and advance only
  after this many calls in a stage)
Follow it with gwctl rollout status; one rollout runs at a time.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			source, filename, err := a.readSource(file)
			if err != nil {
				return err
			}
			shares, err := parseShares(canary)
			if err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			if len(shares) > 0 && step <= 0 {
				return &usageError{cmd: cmd, err: errors.New("--canary needs --step, how long each share lasts")}
			}
			var exprs []string
			for _, g := range gates {
				if g = strings.TrimSpace(g); g != "" {
					exprs = append(exprs, g)
				}
			}
			req := &adminv1.StartRolloutRequest{
				PolicySet: args[0], Source: string(source), Filename: filename, Message: message,
				Shadow: durationpb.New(shadow), CanaryBasisPoints: shares, Gates: exprs,
			}
			if step > 0 {
				req.Step = durationpb.New(step)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.StartRolloutResponse], error) {
					return s.Rollout.StartRollout(ctx, connect.NewRequest(req))
				})
				if code := connect.CodeOf(err); code == connect.CodeInvalidArgument || code == connect.CodeFailedPrecondition {
					var ce *connect.Error
					errors.As(err, &ce)
					return fmt.Errorf("the rollout of policy set %q was refused:\n%s", args[0], ce.Message())
				}
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				ro := resp.GetRollout()
				tests := "the set stores no test cases"
				if ro.GetTestsRevision() != 0 {
					tests = fmt.Sprintf("passed %d stored test cases", ro.GetTestsPassed())
				}
				return p.linef("rollout %s of policy set %q started (%s): now %s; follow it with gwctl rollout status %s",
					ro.GetMeta().GetName(), args[0], tests, stageText(ro), ro.GetMeta().GetName())
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "the candidate's Cedar source (- for stdin)")
	f.DurationVar(&shadow, "shadow", 0, "how long the shadow stage lasts (0: none)")
	f.StringVar(&canary, "canary", "", "canary shares of agents, increasing, e.g. 5%,25%,50%")
	f.DurationVar(&step, "step", 0, "how long each canary share lasts")
	f.StringSliceVar(&gates, "auto-rollback", nil, "gates whose breach rolls back by itself, comma-separated (see above)")
	f.StringVar(&message, "message", "", "why; kept in the set's history when the candidate becomes active")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// stageText words where a rollout stands: "shadow", "canary 25% (step 2
// of 3)", "rolled_back", with " (paused)".
func stageText(ro *configv1.Rollout) string {
	s := enumLabel(ro.GetStage().String(), "ROLLOUT_STAGE_")
	if ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_CANARY {
		steps := ro.GetPlan().GetCanaryBasisPoints()
		if i := int(ro.GetCanaryStep()); i < len(steps) {
			s = fmt.Sprintf("canary %s (step %d of %d)", shareText(steps[i]), i+1, len(steps))
		}
	}
	if ro.GetPaused() {
		s += " (paused)"
	}
	return s
}

// planText words a rollout's plan.
func planText(pl *configv1.RolloutPlan) string {
	var parts []string
	if d := pl.GetShadow().AsDuration(); d > 0 {
		parts = append(parts, "shadow "+d.String())
	}
	if steps := pl.GetCanaryBasisPoints(); len(steps) > 0 {
		shares := make([]string, len(steps))
		for i, bp := range steps {
			shares[i] = shareText(bp)
		}
		parts = append(parts, fmt.Sprintf("canary %s, %s each", strings.Join(shares, ", "), pl.GetStep().AsDuration()))
	}
	parts = append(parts, "complete")
	return strings.Join(parts, " → ")
}

func (a *app) rolloutStatus() *cobra.Command {
	return &cobra.Command{
		Use:   "status [ROLLOUT|POLICY-SET]",
		Short: "Show a rollout (default: the one in progress): stage, counts, gates, data planes",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetRolloutResponse], error) {
					return s.Rollout.GetRollout(ctx, connect.NewRequest(&adminv1.GetRolloutRequest{Name: name}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return printRollout(p, resp)
			})
		},
	}
}

func printRollout(p *printer, resp *adminv1.GetRolloutResponse) error {
	ro, st := resp.GetRollout(), resp.GetStatus()
	fs := []field{
		{"Rollout", ro.GetMeta().GetName()},
		{"Policy set", fmt.Sprintf("%s: version %d → candidate %d", ro.GetPolicySet(), ro.GetBaseVersion(), ro.GetBaseVersion()+1)},
		{"Stage", stageText(ro)},
		{"Plan", planText(ro.GetPlan())},
		{"Gates", strings.Join(ro.GetPlan().GetGates(), ", ")},
		{"Started", timeText(ro.GetMeta().GetCreateTime()) + " by " + ro.GetMeta().GetCreatedBy()},
		{"Stage began", timeText(ro.GetStageStartTime())},
		{"Message", ro.GetMessage()},
	}
	if ro.GetReason() != "" {
		fs = append(fs, field{"Reason", ro.GetReason()})
	}
	fs = append(fs, field{"Next", st.GetNext()})
	if err := p.fields(fs); err != nil {
		return err
	}
	if len(st.GetTotals()) > 0 {
		rows := make([][]string, 0, len(st.GetTotals()))
		for _, t := range st.GetTotals() {
			step := t.GetStage()
			if t.GetCanaryBasisPoints() > 0 {
				step += " " + shareText(t.GetCanaryBasisPoints())
			}
			rows = append(rows, []string{step, t.GetCohort(), u64(t.GetCalls()), u64(t.GetAllowToDeny()), u64(t.GetDenyToAllow()),
				u64(t.GetEvalErrors()), u64(t.GetForwarded()), u64(t.GetUpstreamErrors())})
		}
		if err := p.linef(""); err != nil {
			return err
		}
		if err := p.table([]string{"STEP", "COHORT", "CALLS", "ALLOW→DENY", "DENY→ALLOW", "EVAL ERRORS", "FORWARDED", "UPSTREAM ERRORS"}, rows); err != nil {
			return err
		}
	}
	if len(st.GetGates()) > 0 {
		rows := make([][]string, 0, len(st.GetGates()))
		for _, g := range st.GetGates() {
			verdict := "not yet judged"
			switch {
			case g.GetBreached():
				verdict = "BREACHED"
			case g.GetJudged():
				verdict = "ok"
			}
			rows = append(rows, []string{g.GetGate(), g.GetValue(), verdict})
		}
		if err := p.linef(""); err != nil {
			return err
		}
		if err := p.table([]string{"GATE", "MEASURED", "VERDICT"}, rows); err != nil {
			return err
		}
	}
	if len(st.GetDifferences()) > 0 {
		rows := make([][]string, 0, len(st.GetDifferences()))
		for _, d := range st.GetDifferences() {
			rows = append(rows, []string{d.GetAgent(), d.GetTool(), d.GetCohort(), u64(d.GetCalls()), u64(d.GetAllowToDeny()), u64(d.GetDenyToAllow()), u64(d.GetEvalErrors())})
		}
		if err := p.linef(""); err != nil {
			return err
		}
		if err := p.table([]string{"AGENT", "TOOL", "COHORT", "CALLS", "ALLOW→DENY", "DENY→ALLOW", "EVAL ERRORS"}, rows); err != nil {
			return err
		}
	}
	if len(st.GetDataplanes()) > 0 {
		rows := make([][]string, 0, len(st.GetDataplanes()))
		for _, d := range st.GetDataplanes() {
			rows = append(rows, []string{d.GetName(), strconv.FormatUint(d.GetServingVersion(), 10), dataplaneRollout(d)})
		}
		if err := p.linef(""); err != nil {
			return err
		}
		return p.table([]string{"DATA PLANE", "VERSION", "ROLLOUT STAGE"}, rows)
	}
	return nil
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// dataplaneRollout words the rollout stage a data plane serves.
func dataplaneRollout(d *adminv1.DataplaneStatus) string {
	if d.GetRollout() == "" {
		return "-"
	}
	s := d.GetRollout() + " " + d.GetRolloutStage()
	if d.GetRolloutStage() == "canary" {
		s += " " + shareText(d.GetCanaryBasisPoints())
	}
	return s
}

func (a *app) rolloutList() *cobra.Command {
	var set string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List rollouts, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListRolloutsResponse], error) {
					return s.Rollout.ListRollouts(ctx, connect.NewRequest(&adminv1.ListRolloutsRequest{PolicySet: set}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetRollouts()))
				for _, ro := range resp.GetRollouts() {
					rows = append(rows, []string{ro.GetMeta().GetName(), ro.GetPolicySet(), stageText(ro),
						fmt.Sprintf("%d → %d", ro.GetBaseVersion(), ro.GetBaseVersion()+1), timeText(ro.GetMeta().GetCreateTime()), ro.GetReason()})
				}
				return p.table([]string{"ROLLOUT", "POLICY SET", "STAGE", "VERSIONS", "STARTED", "REASON"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&set, "policy-set", "", "only this policy set's rollouts")
	return cmd
}

func (a *app) rolloutChange(verb string, action adminv1.RolloutAction, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " [ROLLOUT|POLICY-SET]",
		Short: short,
		Long: short + `.

Without an argument it acts on the rollout in progress. The change is
decided at the stage the rollout is at when the server reads it: if the
controller moved the rollout on meanwhile, the change is refused (ABORTED)
and nothing happens; look again with gwctl rollout status.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &adminv1.ChangeRolloutRequest{Action: action, Reason: reason}
			if len(args) == 1 {
				req.Name = args[0]
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ChangeRolloutResponse], error) {
					return s.Rollout.ChangeRollout(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				ro := resp.GetRollout()
				return p.linef("rollout %s (policy set %q): %s", ro.GetMeta().GetName(), ro.GetPolicySet(), stageText(ro))
			})
		},
	}
	if action == adminv1.RolloutAction_ROLLOUT_ACTION_ABORT || action == adminv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK || action == adminv1.RolloutAction_ROLLOUT_ACTION_PAUSE {
		cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the rollout and the admin log")
	}
	return cmd
}
