package gwctl

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// settingCommand is "gwctl settings": the cluster-wide settings (a fixed
// set of keys) every data plane receives with its configuration.
func (a *app) settingCommand() *cobra.Command {
	cmd := group("settings", "Show and change cluster-wide settings, such as the browser origins the MCP endpoint allows")
	cmd.Long = `Cluster-wide settings are a fixed set of keys that every data plane receives
with its configuration, within one snapshot of a change:

  mcp.allowed-origins   browser origins (scheme://host[:port]) whose pages may
                        call /mcp; requests without an Origin header (agents
                        that are not browsers) are always allowed, any other
                        Origin is refused with 403. Default: none.

'gwctl settings get' lists every key with its value and whether it is the
default. Changing a setting needs an admin token.`
	cmd.AddCommand(a.settingGet(), a.settingSet(), a.settingReset())
	return cmd
}

func (a *app) settingGet() *cobra.Command {
	return &cobra.Command{
		Use:     "get [NAME]",
		Aliases: []string{"list"},
		Short:   "Show one setting, or every setting",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				var infos []*adminv1.SettingInfo
				if len(args) == 1 {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetSettingResponse], error) {
						return s.Setting.GetSetting(ctx, connect.NewRequest(&adminv1.GetSettingRequest{Name: args[0]}))
					})
					if err != nil {
						return err
					}
					if p.structured() {
						return p.message(resp.GetSetting())
					}
					infos = []*adminv1.SettingInfo{resp.GetSetting()}
				} else {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListSettingsResponse], error) {
						return s.Setting.ListSettings(ctx, connect.NewRequest(&adminv1.ListSettingsRequest{}))
					})
					if err != nil {
						return err
					}
					if p.structured() {
						return p.message(resp)
					}
					infos = resp.GetSettings()
				}
				rows := make([][]string, 0, len(infos))
				for _, s := range infos {
					rows = append(rows, []string{s.GetName(), settingValuesText(s.GetValues()), settingSource(s)})
				}
				return p.table([]string{"NAME", "VALUES", "SOURCE"}, rows)
			})
		},
	}
}

func (a *app) settingSet() *cobra.Command {
	var revision uint64
	cmd := &cobra.Command{
		Use:   "set NAME [VALUE[,VALUE...]]...",
		Short: "Replace a setting's values",
		Long: `Replaces the values of setting NAME. Values may be given as several
arguments, comma-separated, or both; the control plane stores them in
canonical form (origins lower-case, default ports dropped, sorted). No
values stores an empty list; 'gwctl settings reset NAME' returns to the
default. For example:

  gwctl settings set mcp.allowed-origins https://app.example,http://localhost:3000`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return &usageError{cmd: cmd, err: errMissingSettingName}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			values := []string{}
			for _, arg := range args[1:] {
				for _, v := range strings.Split(arg, ",") {
					if v = strings.TrimSpace(v); v != "" {
						values = append(values, v)
					}
				}
			}
			req := &adminv1.SetSettingRequest{Name: args[0], Values: values, ExpectedRevision: revision}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetSettingResponse], error) {
					return s.Setting.SetSetting(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp.GetSetting())
				}
				return p.linef("%s = %s (revision %d); data planes apply it with their next configuration",
					args[0], settingValuesText(resp.GetSetting().GetValues()), resp.GetSetting().GetSetting().GetMeta().GetRevision())
			})
		},
	}
	cmd.Flags().Uint64Var(&revision, "revision", 0, "only if the stored setting is at this revision")
	return cmd
}

func (a *app) settingReset() *cobra.Command {
	return &cobra.Command{
		Use:   "reset NAME",
		Short: "Return a setting to its default",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ResetSettingResponse], error) {
					return s.Setting.ResetSetting(ctx, connect.NewRequest(&adminv1.ResetSettingRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp.GetSetting())
				}
				return p.linef("%s reset to its default: %s", args[0], settingValuesText(resp.GetSetting().GetValues()))
			})
		},
	}
}

// errMissingSettingName is the usage error of "settings set" without a
// name.
var errMissingSettingName = errors.New("give the setting's NAME, then its values")

func settingValuesText(values []string) string {
	if len(values) == 0 {
		return "(none)"
	}
	return strings.Join(values, ",")
}

func settingSource(s *adminv1.SettingInfo) string {
	if s.GetIsDefault() {
		return "default"
	}
	return "set by " + s.GetSetting().GetMeta().GetUpdatedBy()
}
