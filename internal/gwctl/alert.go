package gwctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) alertCommand() *cobra.Command {
	cmd := group("alert", "Alert rules (who is paged about what) and the outbox of alerts being delivered")
	rule := group("rule", "Manage alert rules")
	rule.AddCommand(a.alertRuleCreate(), a.alertRuleGet(), a.alertRuleList(), a.alertRuleDelete())
	cmd.AddCommand(rule, a.alertList(), a.alertDrop())
	return cmd
}

func (a *app) alertRuleCreate() *cobra.Command {
	var (
		meta                    metaFlags
		onDeny                  []string
		onAnyDeny, onQuarantine bool
		onRollback              bool
		w                       configv1.AlertWebhook
	)
	format := newEnumFlag(configv1.AlertFormat_ALERT_FORMAT_GENERIC, "ALERT_FORMAT_")
	cmd := &cobra.Command{
		Use:   "create NAME --url URL --signing-secret SECRET [--on-deny TAG]... [--on-quarantine] [--on-rollback] [--format generic|pagerduty]",
		Short: "Page someone when a policy tagged @alert denies a call (or a tool is quarantined, or a rollout rolls back)",
		Long: `Creates an alert rule. The leader reads every audit record the control plane
stores and queues one alert per rule and event; it posts the alert to --url
(https, or http to a loopback address) as JSON within about a second of the
call, retrying with backoff for 24 hours. Events:

  --on-deny TAG     a call denied where a determining policy carries
                    @alert("TAG") (repeatable; --on-any-deny: any @alert)
  --on-quarantine   a call refused because its tool is quarantined
                    (one alert per tool and hour)
  --on-rollback     a staged policy rollout rolled back by its gates (an
                    operator's own rollback pages no one)

Every delivery is signed: header Portcullis-Signature is
"t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." || body)>", the key being
the value of --signing-secret (a secret bound to the URL's host; gwctl
secret set NAME --hosts HOST). Receivers check the MAC, refuse timestamps
older than a few minutes, and deduplicate on Portcullis-Alert-Id (the same
on every attempt of one alert). --format pagerduty sends a PagerDuty Events
API v2 trigger (dedup_key = the alert id) with the routing key from
--routing-key-secret.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			r := &configv1.AlertRule{Meta: m, Webhook: &w}
			for _, tag := range onDeny {
				r.Match = append(r.Match, &configv1.AlertMatch{Kind: &configv1.AlertMatch_PolicyDeny{PolicyDeny: &configv1.PolicyDenyMatch{Tag: tag}}})
			}
			if onAnyDeny {
				r.Match = append(r.Match, &configv1.AlertMatch{Kind: &configv1.AlertMatch_PolicyDeny{PolicyDeny: &configv1.PolicyDenyMatch{}}})
			}
			if onQuarantine {
				r.Match = append(r.Match, &configv1.AlertMatch{Kind: &configv1.AlertMatch_Quarantine{Quarantine: &configv1.QuarantineMatch{}}})
			}
			if onRollback {
				r.Match = append(r.Match, &configv1.AlertMatch{Kind: &configv1.AlertMatch_RolloutRollback{RolloutRollback: &configv1.RolloutRollbackMatch{}}})
			}
			if len(r.Match) == 0 {
				return &usageError{cmd: cmd, err: errors.New("give at least one event: --on-deny TAG, --on-any-deny, --on-quarantine or --on-rollback")}
			}
			w.Format = configv1.AlertFormat(format.num)
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateAlertRuleResponse], error) {
					return s.Alert.CreateAlertRule(ctx, connect.NewRequest(&adminv1.CreateAlertRuleRequest{Rule: r}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("alert rule %q created: %s → %s", args[0], matchText(resp.GetRule()), resp.GetRule().GetWebhook().GetUrl())
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&onDeny, "on-deny", nil, `alert on denials by policies annotated @alert("TAG") (repeatable)`)
	f.BoolVar(&onAnyDeny, "on-any-deny", false, "alert on denials by any policy annotated @alert")
	f.BoolVar(&onQuarantine, "on-quarantine", false, "alert on calls refused because their tool is quarantined")
	f.BoolVar(&onRollback, "on-rollback", false, "alert when a staged policy rollout's gates roll it back")
	f.StringVar(&w.Url, "url", "", "the webhook (https; http only to a loopback address)")
	f.StringVar(&w.SigningSecret, "signing-secret", "", "secret whose value keys the HMAC-SHA256 signature")
	f.StringVar(&w.RoutingKeySecret, "routing-key-secret", "", "pagerduty: secret holding the routing key")
	f.StringVar(&w.Severity, "severity", "", "pagerduty: critical (default), error, warning or info")
	addEnumFlag(cmd, format, "format", "body shape")
	return cmd
}

// matchText words a rule's events.
func matchText(r *configv1.AlertRule) string {
	var parts []string
	for _, m := range r.GetMatch() {
		switch k := m.GetKind().(type) {
		case *configv1.AlertMatch_PolicyDeny:
			if k.PolicyDeny.GetTag() == "" {
				parts = append(parts, "deny by any @alert policy")
			} else {
				parts = append(parts, fmt.Sprintf("deny by @alert(%q)", k.PolicyDeny.GetTag()))
			}
		case *configv1.AlertMatch_Quarantine:
			parts = append(parts, "quarantine")
		case *configv1.AlertMatch_RolloutRollback:
			parts = append(parts, "rollout rollback")
		default:
			parts = append(parts, "an event this gwctl does not know")
		}
	}
	return strings.Join(parts, ", ")
}

func (a *app) alertRuleGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an alert rule",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetAlertRuleResponse], error) {
					return s.Alert.GetAlertRule(ctx, connect.NewRequest(&adminv1.GetAlertRuleRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				r := resp.GetRule()
				w := r.GetWebhook()
				fs := append(metaFields(r.GetMeta(), "Name"),
					field{"Events", matchText(r)}, field{"URL", w.GetUrl()},
					field{"Format", enumLabel(w.GetFormat().String(), "ALERT_FORMAT_")}, field{"Signing secret", w.GetSigningSecret()},
					field{"Routing key secret", w.GetRoutingKeySecret()}, field{"Severity", w.GetSeverity()},
					field{"Disabled", fmt.Sprint(r.GetDisabled())})
				return p.fields(append(fs, metaTrailer(r.GetMeta())...))
			})
		},
	}
}

func (a *app) alertRuleList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List alert rules",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				rules, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.AlertRule, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListAlertRulesResponse], error) {
						return s.Alert.ListAlertRules(ctx, connect.NewRequest(&adminv1.ListAlertRulesRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetRules(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListAlertRulesResponse{Rules: rules})
				}
				rows := make([][]string, 0, len(rules))
				for _, r := range rules {
					rows = append(rows, []string{r.GetMeta().GetName(), matchText(r), r.GetWebhook().GetUrl(),
						enumLabel(r.GetWebhook().GetFormat().String(), "ALERT_FORMAT_"), fmt.Sprint(r.GetDisabled())})
				}
				return p.table([]string{"NAME", "EVENTS", "URL", "FORMAT", "DISABLED"}, rows)
			})
		},
	}
}

func (a *app) alertRuleDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an alert rule (its alerts still in the outbox are given up)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteAlertRuleResponse], error) {
					return s.Alert.DeleteAlertRule(ctx, connect.NewRequest(&adminv1.DeleteAlertRuleRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("alert rule %q deleted", args[0])
			})
		},
	}
}

func (a *app) alertList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the alerts waiting to be delivered, with their attempts",
		Long: `Lists the outbox: alerts queued and not yet delivered. An alert leaves it once
its receiver answers 2xx, or 24 hours after it was queued (given up); both
are audit records of the control plane (gwctl audit query --dataplane
control-plane).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				alerts, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.Alert, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListAlertsResponse], error) {
						return s.Alert.ListAlerts(ctx, connect.NewRequest(&adminv1.ListAlertsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetAlerts(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListAlertsResponse{Alerts: alerts})
				}
				rows := make([][]string, 0, len(alerts))
				for _, al := range alerts {
					rows = append(rows, []string{al.GetMeta().GetName(), al.GetRule(), al.GetRecordId(), timeText(al.GetMeta().GetCreateTime()),
						fmt.Sprint(al.GetAttempts()), timeText(al.GetNextAttemptTime()), cell(al.GetLastError())})
				}
				return p.table([]string{"ID", "RULE", "RECORD", "QUEUED", "ATTEMPTS", "NEXT", "LAST ERROR"}, rows)
			})
		},
	}
}

func (a *app) alertDrop() *cobra.Command {
	return &cobra.Command{
		Use:   "drop ID",
		Short: "Remove an alert from the outbox without sending it",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DropAlertResponse], error) {
					return s.Alert.DropAlert(ctx, connect.NewRequest(&adminv1.DropAlertRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("alert %s dropped", args[0])
			})
		},
	}
}

func (a *app) auditConsumers() *cobra.Command {
	return &cobra.Command{
		Use:   "consumers",
		Short: "Show the leader's audit consumers (learned lists, alerts) and how far behind they are",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[auditv1.ListConsumersResponse], error) {
					return s.Audit.ListConsumers(ctx, connect.NewRequest(&auditv1.ListConsumersRequest{}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetConsumers()))
				for _, co := range resp.GetConsumers() {
					rows = append(rows, []string{co.GetName(), fmt.Sprint(co.GetBatches()), fmt.Sprint(co.GetRecords()), fmt.Sprint(co.GetLag()), timeText(co.GetUpdateTime())})
				}
				return p.table([]string{"CONSUMER", "BATCHES", "RECORDS", "LAG", "UPDATED"}, rows)
			})
		},
	}
}
