package gwctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) valueListLearn() *cobra.Command {
	var (
		tool, argument string
		history        time.Duration
	)
	scope := newEnumFlag(configv1.LearningScope_LEARNING_SCOPE_UNSPECIFIED, "LEARNING_SCOPE_")
	cmd := &cobra.Command{
		Use:   "learn NAME --tool PREFIX__TOOL --argument ARG --scope agent|team|global [--from-history 90d]",
		Short: "Make a value list learn from successful calls of a tool",
		Long: `Makes the value list NAME learn: every call of --tool that policy allowed and
that succeeded adds the value of its argument --argument (a string; a dotted
path reaches into objects: payee.account) to the set of the caller's scope —
the agent's own (--scope agent), its team's (team) or one for everyone
(global). Denied, refused and failed calls teach nothing. Policies read the
caller's set, together with the list's own values, as

  context.learned["NAME"].contains(context.arguments.to)

--from-history seeds the list from the audit records the control plane
stores, of calls made since that long ago (at most its --audit-retention):
exactly what those calls would have taught. The command waits until the
seed is done and prints how many values the list learned.

A list that learns keeps what it learned while tool, argument and scope stay
the same (running the command again changes nothing); changing any of them
starts it afresh. A value reaches the data planes within the audit upload
interval, the control plane's --audit-consumer-interval and one snapshot
push (about a second).`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tool == "" || argument == "" || scope.num == 0 {
				return &usageError{cmd: cmd, err: errors.New("--tool, --argument and --scope are required")}
			}
			req := &adminv1.SetLearningRequest{Name: args[0], Tool: tool, Argument: argument, Scope: configv1.LearningScope(scope.num)}
			if history > 0 {
				req.FromHistory = durationpb.New(history)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetLearningResponse], error) {
					return s.ValueList.SetLearning(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				l := resp.GetLearning()
				for !l.GetSeeded() {
					// The leader seeds the list from history: wait for it.
					select {
					case <-ctx.Done():
						return fmt.Errorf("value list %q learns, but seeding it from history did not finish within --timeout; see gwctl valuelist get %s", args[0], args[0])
					case <-time.After(200 * time.Millisecond):
					}
					got, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetValueListResponse], error) {
						return s.ValueList.GetValueList(ctx, connect.NewRequest(&adminv1.GetValueListRequest{Name: args[0]}))
					})
					if err != nil {
						return err
					}
					if got.GetLearning().GetGeneration() != l.GetGeneration() {
						return fmt.Errorf("value list %q was changed again while it was being seeded", args[0])
					}
					l = got.GetLearning()
				}
				if p.structured() {
					return p.message(&adminv1.SetLearningResponse{Learning: l})
				}
				n := learnedCount(l)
				return p.linef("value list %q learns %s of %s per %s; %d values learned in %d scopes", args[0], l.GetArgument(), l.GetTool(),
					enumLabel(l.GetScope().String(), "LEARNING_SCOPE_"), n, len(l.GetSets()))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&tool, "tool", "", "the tool whose calls teach the list, by its action name (<prefix>__<tool>)")
	f.StringVar(&argument, "argument", "", "the argument to learn (a name, or a dotted path)")
	addEnumFlag(cmd, scope, "scope", "whose calls teach, and whose calls a learned value allows")
	f.Var(newDurationFlag(&history, 0), "from-history", "seed from stored calls made since this long ago (e.g. 90d)")
	return cmd
}

// learnedCount is how many values a list learned in all scopes.
func learnedCount(l *configv1.ListLearning) int {
	n := 0
	for _, s := range l.GetSets() {
		n += len(s.GetValues())
	}
	return n
}

func (a *app) valueListUnlearn() *cobra.Command {
	return &cobra.Command{
		Use:   "unlearn NAME",
		Short: "Stop a value list learning, and forget what it learned (its own values stay)",
		Long: `Stops the value list NAME learning and forgets every value it learned or an
operator approved; the list's own values stay. Refused while an enabled
policy set reads context.learned["NAME"].`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.StopLearningResponse], error) {
					return s.ValueList.StopLearning(ctx, connect.NewRequest(&adminv1.StopLearningRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("value list %q no longer learns", args[0])
			})
		},
	}
}

// scopeFlags are the --agent, --team and --global flags of approve and
// forget.
type scopeFlags struct {
	agent, team string
	global      bool
}

func (s *scopeFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.agent, "agent", "", "the agent's set (a list learning per agent)")
	f.StringVar(&s.team, "team", "", "the team's set (a list learning per team)")
	f.BoolVar(&s.global, "global", false, "the one set (a list learning globally)")
}

func (a *app) valueListApprove() *cobra.Command {
	var (
		scope    scopeFlags
		recordID string
	)
	cmd := &cobra.Command{
		Use:   "approve NAME VALUE... --agent A|--team T|--global  |  approve [NAME] --record DATAPLANE/SEQ",
		Short: "Approve values in one scope of a learned list (for example the payee of a denied call)",
		Long: `Adds values to one scope's set of the learned list NAME, as if a successful
call had taught them. With --record, the audit record of a denied call (its
id is in the alert, and in 'gwctl audit query') gives both the value (the
call's argument the list learns) and the scope (the call's agent, or its
team); NAME may then be left out when only one list learns from that tool:

  gwctl valuelist approve --record finance-dp/42
  gwctl valuelist approve payees acct-991 --agent billing-bot

The value reaches the data planes with the next snapshot push (well under a
second); the same call then passes.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if recordID != "" && len(args) > 1 {
				return &usageError{cmd: cmd, err: errors.New("--record gives the value: name at most the list")}
			}
			if recordID == "" && len(args) < 2 {
				return &usageError{cmd: cmd, err: errors.New("give NAME and the values, or --record")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &adminv1.ApproveValuesRequest{RecordId: recordID, Agent: scope.agent, Team: scope.team, Global: scope.global}
			if len(args) > 0 {
				req.Name = args[0]
				req.Values = args[1:]
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ApproveValuesResponse], error) {
					return s.ValueList.ApproveValues(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("value list %q approves %q for %s (revision %d)", resp.GetLearning().GetMeta().GetName(), resp.GetValues(), resp.GetScope(),
					resp.GetLearning().GetMeta().GetRevision())
			})
		},
	}
	scope.register(cmd)
	cmd.Flags().StringVar(&recordID, "record", "", "the audit record of a denied call: DATAPLANE/SEQUENCE")
	return cmd
}

func (a *app) valueListForget() *cobra.Command {
	var scope scopeFlags
	cmd := &cobra.Command{
		Use:   "forget NAME VALUE... --agent A|--team T|--global",
		Short: "Remove learned values from one scope of a learned list",
		Args:  minValueArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &adminv1.ForgetValuesRequest{Name: args[0], Values: args[1:], Agent: scope.agent, Team: scope.team, Global: scope.global}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ForgetValuesResponse], error) {
					return s.ValueList.ForgetValues(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("value list %q has %d learned values", args[0], learnedCount(resp.GetLearning()))
			})
		},
	}
	scope.register(cmd)
	return cmd
}

// learningLines prints a learned list's learning under its value list.
func learningLines(p *printer, l *configv1.ListLearning) error {
	if l == nil {
		return nil
	}
	seed := "from when it started learning"
	if l.GetSeedFrom() != nil {
		seed = "seeded from calls since " + timeText(l.GetSeedFrom())
		if !l.GetSeeded() {
			seed += " (seeding…)"
		}
	}
	if err := p.linef("Learns %s of %s per %s, %s; %d values learned", l.GetArgument(), l.GetTool(),
		enumLabel(l.GetScope().String(), "LEARNING_SCOPE_"), seed, learnedCount(l)); err != nil {
		return err
	}
	for _, s := range l.GetSets() {
		if err := p.linef("  %s (%d)", s.GetScope(), len(s.GetValues())); err != nil {
			return err
		}
		for _, v := range s.GetValues() {
			if err := p.linef("    %s", cell(v)); err != nil {
				return err
			}
		}
	}
	return nil
}
