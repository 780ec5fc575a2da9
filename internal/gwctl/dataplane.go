package gwctl

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) dataplaneCommand() *cobra.Command {
	cmd := group("dataplane", "Manage data planes: join credentials and status")
	token := group("token", "Issue or revoke a data plane's join credential")
	token.AddCommand(a.dataplaneTokenCreate(), a.dataplaneTokenRevoke())
	cmd.AddCommand(token, a.dataplaneList())
	return cmd
}

func (a *app) dataplaneTokenCreate() *cobra.Command {
	var (
		ttl         time.Duration
		description string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Issue a join credential for data plane NAME and print it (shown once)",
		Long: `Issues a join credential: the data plane's own token plus the fingerprint of
the cluster CA it must pin. Give it to the data plane as --join-credential or
PORTCULLIS_DP_JOIN_CREDENTIAL. It also keys the encryption of the data plane's
last-known-good snapshot on disk.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &adminv1.CreateJoinCredentialRequest{Name: args[0], Description: description}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateJoinCredentialResponse], error) {
					return s.Dataplane.CreateJoinCredential(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				if err := p.fields([]field{{"Data plane", args[0]}, {"Token ID", resp.GetTokenId()}, {"CA", resp.GetCaFingerprint()}}); err != nil {
					return err
				}
				return p.text("\nJoin credential (shown only this once):\n\n    " + resp.GetCredential() + "\n")
			})
		},
	}
	f := cmd.Flags()
	f.Var(newDurationFlag(&ttl, 0), "ttl", "lifetime of the credential (default 365d)")
	f.StringVar(&description, "description", "", "what the data plane is for")
	return cmd
}

func (a *app) dataplaneTokenRevoke() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke data plane NAME's join credential: its stream is cut off at once",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.RevokeJoinCredentialResponse], error) {
					return s.Dataplane.RevokeJoinCredential(ctx, connect.NewRequest(&adminv1.RevokeJoinCredentialRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("join credential of data plane %q revoked", args[0])
			})
		},
	}
}

func (a *app) dataplaneList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List data planes: version, ack/nack and reason, mode, last seen, lag, rollout stage; and whether the cluster is frozen",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListDataplanesResponse], error) {
					return s.Dataplane.ListDataplanes(ctx, connect.NewRequest(&adminv1.ListDataplanesRequest{}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetDataplanes()))
				for _, d := range resp.GetDataplanes() {
					report := "-"
					if d.GetReportedVersion() != 0 {
						report = fmt.Sprintf("ack %d", d.GetReportedVersion())
						if !d.GetApplied() {
							report = fmt.Sprintf("NACK %d: %s", d.GetReportedVersion(), d.GetReason())
						}
					}
					conn := "no"
					if d.GetConnected() {
						conn = "yes"
					}
					rows = append(rows, []string{
						d.GetName(), strconv.FormatUint(d.GetServingVersion(), 10), report,
						enumLabel(d.GetMode().String(), "MODE_"), conn, timeText(d.GetLastSeen()),
						strconv.FormatUint(d.GetLag(), 10), dataplaneRollout(d), d.GetNodeId(),
					})
				}
				if err := p.table([]string{"NAME", "VERSION", "LAST REPORT", "MODE", "CONNECTED", "LAST SEEN", "LAG", "ROLLOUT", "NODE"}, rows); err != nil {
					return err
				}
				if err := p.linef("cluster version %d (epoch %d)", resp.GetClusterVersion(), max(resp.GetClusterEpoch(), 1)); err != nil {
					return err
				}
				if resp.GetFrozen() {
					return p.linef("FROZEN: every data plane refuses mutating calls (reason: %q); 'gwctl freeze off' lifts the brake", resp.GetFreezeReason())
				}
				return nil
			})
		},
	}
}

func (a *app) freezeCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:       "freeze on|off",
		Short:     "Emergency brake: make every data plane refuse mutating calls (on) or serve them again (off)",
		Args:      exactArgs("on|off"),
		ValidArgs: []string{"on", "off"},
		RunE: func(cmd *cobra.Command, args []string) error {
			var frozen bool
			switch args[0] {
			case "on":
				frozen = true
			case "off":
			default:
				return &usageError{cmd: cmd, err: fmt.Errorf("freeze takes on or off, not %q", args[0])}
			}
			req := &adminv1.SetFreezeRequest{Frozen: frozen, Reason: reason}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetFreezeResponse], error) {
					return s.Dataplane.SetFreeze(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("freeze %s (config version %d); data planes pick it up with that version", args[0], resp.GetConfigVersion())
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown to callers whose calls are refused")
	return cmd
}
