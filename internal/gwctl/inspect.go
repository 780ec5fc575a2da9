package gwctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/detector"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) inspectCommand() *cobra.Command {
	cmd := group("inspect", "Runtime inspection: what data planes look for in arguments, results and streams")
	rule := group("rule", "Manage inspection rules")
	rule.AddCommand(a.inspectRuleWrite(false), a.inspectRuleWrite(true), a.inspectRuleGet(), a.inspectRuleList(), a.inspectRuleDelete())
	cmd.AddCommand(rule)
	return cmd
}

// ruleFlags are the flags that spell an inspection rule.
type ruleFlags struct {
	meta                metaFlags
	side, mode, action  *enumFlag
	upstream, tool      string
	team                string
	detectors, patterns []string
	rowsPath            string
	maxRows             int64
	maxResponseBytes    int64
	holdBack            int64
	classifierURL       string
	classifierTimeout   time.Duration
	classifierClosed    bool
	classifierMaxInput  int64
}

func (f *ruleFlags) register(cmd *cobra.Command) {
	f.meta.register(cmd)
	f.side = newEnumFlag(configv1.InspectionSide_INSPECTION_SIDE_UNSPECIFIED, "INSPECTION_SIDE_")
	f.mode = newEnumFlag(configv1.InspectionMode_INSPECTION_MODE_UNSPECIFIED, "INSPECTION_MODE_")
	f.action = newEnumFlag(configv1.InspectionAction_INSPECTION_ACTION_UNSPECIFIED, "INSPECTION_ACTION_")
	addEnumFlag(cmd, f.side, "side", "inspect the request (arguments) or the response (result and streamed frames); required")
	addEnumFlag(cmd, f.mode, "mode", "enforce, shadow (record only) or off; required")
	addEnumFlag(cmd, f.action, "action", "what an enforced finding does (default flag): request flag|block, response flag|redact|mask|block")
	fl := cmd.Flags()
	fl.StringVar(&f.upstream, "upstream", "", "only calls to this upstream")
	fl.StringVar(&f.tool, "tool", "", "only this tool, as the upstream names it (needs --upstream)")
	fl.StringVar(&f.team, "team", "", "only calls by agents of this team")
	fl.StringArrayVar(&f.detectors, "detector", nil, "a built-in detector or one kind (repeatable): "+strings.Join(detector.Detectors(), ", ")+", e.g. pii.email")
	fl.StringArrayVar(&f.patterns, "pattern", nil, "an RE2 pattern, reported as pattern.<rule name> (repeatable)")
	fl.StringVar(&f.rowsPath, "rows-path", "", "response: JSON path whose items are counted, e.g. $.rows")
	fl.Int64Var(&f.maxRows, "max-rows", 0, "response: most items allowed at --rows-path")
	fl.Int64Var(&f.maxResponseBytes, "max-response-bytes", 0, "response: most bytes an answer may have")
	fl.Int64Var(&f.holdBack, "hold-back-bytes", 0, "response: hold streamed frames back until the whole answer is inspected, up to this many bytes")
	fl.StringVar(&f.classifierURL, "classifier-url", "", "a classifier service to ask (POST JSON; see README)")
	fl.Var(newDurationFlag(&f.classifierTimeout, 0), "classifier-timeout", "how long to wait for the classifier (default 500ms, at most 5s)")
	fl.BoolVar(&f.classifierClosed, "classifier-fail-closed", false, "refuse when the classifier fails (default: go on, with the finding classifier.unavailable)")
	fl.Int64Var(&f.classifierMaxInput, "classifier-max-input", 0, "most bytes of text sent to the classifier (default and at most 65536)")
}

func (f *ruleFlags) build(cmd *cobra.Command, name string) (*configv1.InspectionRule, error) {
	m, err := f.meta.build(name)
	if err != nil {
		return nil, err
	}
	if f.side.num == 0 || f.mode.num == 0 {
		return nil, &usageError{cmd: cmd, err: errors.New("--side and --mode are required")}
	}
	r := &configv1.InspectionRule{
		Meta:             m,
		Side:             configv1.InspectionSide(f.side.num),
		Mode:             configv1.InspectionMode(f.mode.num),
		Action:           configv1.InspectionAction(f.action.num),
		Detectors:        f.detectors,
		Patterns:         f.patterns,
		MaxResponseBytes: f.maxResponseBytes,
		HoldBackBytes:    f.holdBack,
	}
	if f.upstream != "" || f.tool != "" || f.team != "" {
		r.Scope = &configv1.InspectionScope{Upstream: f.upstream, Tool: f.tool, Team: f.team}
	}
	if f.rowsPath != "" || cmd.Flags().Changed("max-rows") {
		r.Rows = &configv1.InspectionRowLimit{Path: f.rowsPath, MaxRows: f.maxRows}
	}
	if f.classifierURL != "" {
		r.Classifier = &configv1.InspectionClassifier{Url: f.classifierURL, FailClosed: f.classifierClosed, MaxInputBytes: f.classifierMaxInput}
		if f.classifierTimeout > 0 {
			r.Classifier.Timeout = durationpb.New(f.classifierTimeout)
		}
	}
	return r, nil
}

func (a *app) inspectRuleWrite(update bool) *cobra.Command {
	var f ruleFlags
	use, short, verb := "create NAME --side S --mode M [...]", "Create an inspection rule", "created"
	if update {
		use, short, verb = "update NAME --side S --mode M [...]", "Replace an inspection rule (every flag, as for create)", "updated"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: `A rule looks at one side of the calls in its scope (--upstream, --tool,
--team; none means every call) with built-in detectors, RE2 patterns, a
classifier service, or ceilings on rows and bytes, and says what an
enforced finding does.

Request side: findings become Cedar context (context.findings holds
"exfiltration" and "exfiltration.url_payload"), so policies decide:
  gwctl inspect rule create no-exfil --side request --mode enforce --detector exfiltration
  forbid(principal, action in Action::"call_tool", resource)
    when { context.findings.contains("exfiltration") };
Response side: flag, redact, mask or block:
  gwctl inspect rule create rows --side response --mode enforce --action block \
    --upstream db --rows-path '$.rows' --max-rows 1000
  gwctl inspect rule create pii-out --side response --mode enforce --action redact --detector pii
  gwctl inspect rule create poison --side response --mode enforce --action block --detector injection
--mode shadow records findings in the audit log and changes nothing.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rule, err := f.build(cmd, args[0])
			if err != nil {
				return err
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				var out *configv1.InspectionRule
				if update {
					resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.UpdateInspectionRuleResponse], error) {
						return s.Inspection.UpdateInspectionRule(ctx, connect.NewRequest(&adminv1.UpdateInspectionRuleRequest{Rule: rule}))
					})
					if err != nil {
						return err
					}
					if p.structured() {
						return p.message(resp)
					}
					out = resp.GetRule()
				} else {
					resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateInspectionRuleResponse], error) {
						return s.Inspection.CreateInspectionRule(ctx, connect.NewRequest(&adminv1.CreateInspectionRuleRequest{Rule: rule}))
					})
					if err != nil {
						return err
					}
					if p.structured() {
						return p.message(resp)
					}
					out = resp.GetRule()
				}
				return p.linef("inspection rule %q %s (%s, %s, revision %d)", args[0], verb,
					sideLabel(out.GetSide()), modeLabel(out.GetMode()), out.GetMeta().GetRevision())
			})
		},
	}
	f.register(cmd)
	return cmd
}

func sideLabel(s configv1.InspectionSide) string { return enumLabel(s.String(), "INSPECTION_SIDE_") }
func modeLabel(m configv1.InspectionMode) string { return enumLabel(m.String(), "INSPECTION_MODE_") }
func actionLabel(a configv1.InspectionAction) string {
	if a == configv1.InspectionAction_INSPECTION_ACTION_UNSPECIFIED {
		return "flag"
	}
	return enumLabel(a.String(), "INSPECTION_ACTION_")
}

// scopeText is a rule's scope in one cell: "upstream/tool team:x", or
// "every call".
func scopeText(s *configv1.InspectionScope) string {
	var parts []string
	switch {
	case s.GetTool() != "":
		parts = append(parts, s.GetUpstream()+"/"+s.GetTool())
	case s.GetUpstream() != "":
		parts = append(parts, s.GetUpstream())
	}
	if s.GetTeam() != "" {
		parts = append(parts, "team "+s.GetTeam())
	}
	if len(parts) == 0 {
		return "every call"
	}
	return strings.Join(parts, ", ")
}

// looksFor is what a rule looks for, in one cell.
func looksFor(r *configv1.InspectionRule) string {
	parts := append([]string(nil), r.GetDetectors()...)
	if n := len(r.GetPatterns()); n > 0 {
		parts = append(parts, fmt.Sprintf("%d pattern(s)", n))
	}
	if c := r.GetClassifier(); c != nil {
		parts = append(parts, "classifier")
	}
	if rows := r.GetRows(); rows != nil {
		parts = append(parts, fmt.Sprintf("rows at %s ≤ %d", rows.GetPath(), rows.GetMaxRows()))
	}
	if n := r.GetMaxResponseBytes(); n > 0 {
		parts = append(parts, fmt.Sprintf("≤ %d bytes", n))
	}
	return strings.Join(parts, ", ")
}

func (a *app) inspectRuleGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an inspection rule",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetInspectionRuleResponse], error) {
					return s.Inspection.GetInspectionRule(ctx, connect.NewRequest(&adminv1.GetInspectionRuleRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				r := resp.GetRule()
				fs := append(metaFields(r.GetMeta(), "Name"),
					field{"Side", sideLabel(r.GetSide())},
					field{"Mode", modeLabel(r.GetMode())},
					field{"Action", actionLabel(r.GetAction())},
					field{"Scope", scopeText(r.GetScope())},
					field{"Detectors", strings.Join(r.GetDetectors(), ", ")},
					field{"Patterns", strings.Join(r.GetPatterns(), "  ")},
				)
				if rows := r.GetRows(); rows != nil {
					fs = append(fs, field{"Rows", fmt.Sprintf("at most %d at %s", rows.GetMaxRows(), rows.GetPath())})
				}
				if n := r.GetMaxResponseBytes(); n > 0 {
					fs = append(fs, field{"Max response", fmt.Sprintf("%d bytes", n)})
				}
				if n := r.GetHoldBackBytes(); n > 0 {
					fs = append(fs, field{"Hold back", fmt.Sprintf("up to %d bytes", n)})
				}
				if cl := r.GetClassifier(); cl != nil {
					fail := "open"
					if cl.GetFailClosed() {
						fail = "closed"
					}
					timeout := "500ms"
					if cl.GetTimeout() != nil {
						timeout = cl.GetTimeout().AsDuration().String()
					}
					fs = append(fs, field{"Classifier", fmt.Sprintf("%s (timeout %s, fails %s)", cl.GetUrl(), timeout, fail)})
				}
				return p.fields(append(fs, metaTrailer(r.GetMeta())...))
			})
		},
	}
}

func (a *app) inspectRuleList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List inspection rules",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				rules, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.InspectionRule, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListInspectionRulesResponse], error) {
						return s.Inspection.ListInspectionRules(ctx, connect.NewRequest(&adminv1.ListInspectionRulesRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetRules(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListInspectionRulesResponse{Rules: rules})
				}
				rows := make([][]string, 0, len(rules))
				for _, r := range rules {
					rows = append(rows, []string{r.GetMeta().GetName(), sideLabel(r.GetSide()), modeLabel(r.GetMode()), actionLabel(r.GetAction()),
						cell(scopeText(r.GetScope())), cell(looksFor(r)), fmt.Sprint(r.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "SIDE", "MODE", "ACTION", "SCOPE", "LOOKS FOR", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) inspectRuleDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an inspection rule",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteInspectionRuleResponse], error) {
					return s.Inspection.DeleteInspectionRule(ctx, connect.NewRequest(&adminv1.DeleteInspectionRuleRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("inspection rule %q deleted", args[0])
			})
		},
	}
}
