package gwctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
)

func (a *app) toolCommand() *cobra.Command {
	cmd := group("tool", "Pin approved tool definitions")
	cmd.AddCommand(a.toolPin(), a.toolApprove(), a.toolList(), a.toolGet(), a.toolDelete(),
		a.toolVersions(), a.toolAssign(), a.toolSetDefault(), a.toolDeprecate(), a.toolDiff(), a.toolCallers())
	return cmd
}

func (a *app) toolPin() *cobra.Command {
	var upstream, tool, file string
	var keepDefault bool
	class := newEnumFlag(configv1.ToolClass_TOOL_CLASS_UNSPECIFIED, "TOOL_CLASS_")
	cmd := &cobra.Command{
		Use:   "pin --upstream U --tool T --definition FILE.json --class CLASS",
		Short: "Approve a tool definition as a new version and make it active",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			def, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read --definition: %w", err)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(def, &obj); err != nil {
				return fmt.Errorf("--definition %s is not a JSON object: %w", file, err)
			}
			if class.num == 0 {
				return errors.New("--class is required")
			}
			hash, _, err := toolpin.Hash(def)
			if err != nil {
				return fmt.Errorf("--definition %s: %w", file, err)
			}
			req := &adminv1.PinToolRequest{Upstream: upstream, Tool: tool, Definition: def, Class: configv1.ToolClass(class.num), KeepDefault: keepDefault}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.PinToolResponse], error) {
					return s.Tool.PinTool(ctx, connect.NewRequest(req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				v := versionWithHash(resp.GetPin(), hash)
				if err := p.linef("pinned %s/%s version %d (%s, %s)%s", upstream, tool, v.GetVersion(),
					enumLabel(v.GetClass().String(), "TOOL_CLASS_"), v.GetDefinitionHash(), defaultNote(resp.GetPin(), v)); err != nil {
					return err
				}
				return printWarnings(p, resp.GetWarnings())
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&upstream, "upstream", "", "upstream name")
	f.StringVar(&tool, "tool", "", "tool name as the upstream reports it")
	f.StringVar(&file, "definition", "", "JSON file with the tool definition (at least name and inputSchema)")
	f.BoolVar(&keepDefault, "keep-default", false, "record the version without making it the default (stage it: gwctl tool assign, then gwctl tool set-default)")
	addEnumFlag(cmd, class, "class", "your classification of the tool")
	for _, name := range []string{"upstream", "tool", "definition", "class"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (a *app) toolList() *cobra.Command {
	var upstream string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tool pins, warning about tools data planes quarantined",
		Long: `Lists tool pins. A pin some data plane reports quarantined (its
upstream's live definition differs from the pin, or the upstream no longer
lists it) is marked QUARANTINED, with a warning line saying what to do.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				pins, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.ToolPin, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListToolPinsResponse], error) {
						return s.Tool.ListToolPins(ctx, connect.NewRequest(&adminv1.ListToolPinsRequest{Upstream: upstream, PageSize: pageSize, PageToken: token}))
					})
					return resp.GetPins(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListToolPinsResponse{Pins: pins})
				}
				quarantined, qerr := quarantines(ctx, c, pins)
				rows := make([][]string, 0, len(pins))
				var warnings []string
				for _, pin := range pins {
					v := activeVersion(pin)
					key, warning := pin.GetUpstream()+"/"+pin.GetTool(), "-"
					if qs := quarantined[key]; len(qs) > 0 {
						warning = fmt.Sprintf("QUARANTINED (%d data plane(s))", len(qs))
						warnings = append(warnings, quarantineWarning(key, qs))
					}
					rows = append(rows, []string{pin.GetUpstream(), pin.GetTool(), fmt.Sprint(v.GetVersion()),
						fmt.Sprint(len(pin.GetVersions())), enumLabel(v.GetClass().String(), "TOOL_CLASS_"), truncate(v.GetDefinitionHash(), 20), warning})
				}
				if err := p.table([]string{"UPSTREAM", "TOOL", "ACTIVE", "VERSIONS", "CLASS", "HASH", "WARNING"}, rows); err != nil {
					return err
				}
				for _, w := range warnings {
					if err := p.linef("%s", w); err != nil {
						return err
					}
				}
				if qerr != nil {
					return p.linef("(quarantines unknown: data-plane statuses could not be read: %v)", connect.CodeOf(qerr))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&upstream, "upstream", "", "only the pins of this upstream")
	return cmd
}

func (a *app) toolGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get UPSTREAM TOOL",
		Short: "Show a tool pin and its versions",
		Args:  exactArgs("UPSTREAM", "TOOL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetToolPinResponse], error) {
					return s.Tool.GetToolPin(ctx, connect.NewRequest(&adminv1.GetToolPinRequest{Upstream: args[0], Tool: args[1]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				pin := resp.GetPin()
				active := activeVersion(pin).GetVersion()
				fs := []field{{"Upstream", pin.GetUpstream()}, {"Tool", pin.GetTool()}, {"Active version", fmt.Sprint(active)}}
				if err := p.fields(append(fs, metaTrailer(pin.GetMeta())...)); err != nil {
					return err
				}
				if err := p.text("\n"); err != nil {
					return err
				}
				rows := make([][]string, 0, len(pin.GetVersions()))
				for _, v := range pin.GetVersions() {
					mark := ""
					if v.GetVersion() == active {
						mark = "*"
					}
					rows = append(rows, []string{fmt.Sprint(v.GetVersion()), mark, enumLabel(v.GetClass().String(), "TOOL_CLASS_"),
						v.GetDefinitionHash(), timeText(v.GetApproveTime()), v.GetApprovedBy()})
				}
				return p.table([]string{"VERSION", "ACTIVE", "CLASS", "HASH", "APPROVED", "APPROVED-BY"}, rows)
			})
		},
	}
}

func (a *app) toolDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete UPSTREAM TOOL",
		Short: "Delete a tool pin with every version",
		Args:  exactArgs("UPSTREAM", "TOOL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteToolPinResponse], error) {
					return s.Tool.DeleteToolPin(ctx, connect.NewRequest(&adminv1.DeleteToolPinRequest{Upstream: args[0], Tool: args[1]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("tool pin %s/%s deleted", args[0], args[1])
			})
		},
	}
}

// activeVersion is the default version: what data planes serve to agents
// no assignment names.
func activeVersion(pin *configv1.ToolPin) *configv1.ToolVersion { return toolversion.Default(pin) }

// versionWithHash returns the newest version of pin with the definition
// hash, nil for none.
func versionWithHash(pin *configv1.ToolPin, hash string) *configv1.ToolVersion {
	var out *configv1.ToolVersion
	for _, v := range pin.GetVersions() {
		if v.GetDefinitionHash() == hash && v.GetVersion() > out.GetVersion() {
			out = v
		}
	}
	return out
}

// defaultNote says, after an approval, whether v became the default.
func defaultNote(pin *configv1.ToolPin, v *configv1.ToolVersion) string {
	if d := activeVersion(pin); d.GetVersion() != v.GetVersion() {
		return fmt.Sprintf("; the default stays version %d: stage it with gwctl tool assign, then gwctl tool set-default", d.GetVersion())
	}
	return ", the default"
}

// printWarnings prints the control plane's warnings about an approval.
func printWarnings(p *printer, warnings []string) error {
	for _, w := range warnings {
		if err := p.linef("warning: %s", w); err != nil {
			return err
		}
	}
	return nil
}
