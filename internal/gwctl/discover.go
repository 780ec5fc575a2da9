package gwctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
)

func (a *app) upstreamDiscover() *cobra.Command {
	var writeDir string
	cmd := &cobra.Command{
		Use:   "discover NAME",
		Short: "List an upstream's live tools and what differs from the pins",
		Long: `Has the control plane connect to the upstream (with the upstream's own
credential, under the egress policy) and compare each tool it lists with
its pin:

  new      listed, not pinned
  pinned   listed, and the live definition hashes to the active pin
  changed  listed, but the live definition differs from the pin: data
           planes quarantine the tool until you approve it
  missing  pinned, but the upstream no longer lists it

The suggested class comes from the upstream's own annotations: a hint, not
a classification. -o json includes each live definition; --write-dir
writes each to DIR/<tool>.json for review. Approve a definition with
"gwctl tool approve".`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				res, err := discover(ctx, c, args[0])
				if err != nil {
					return err
				}
				if writeDir != "" {
					if err := writeDefinitions(writeDir, res.GetTools()); err != nil {
						return err
					}
				}
				if p.structured() {
					b, err := json.Marshal(discoveryJSON(res.GetTools()))
					if err != nil {
						return fmt.Errorf("encode output: %w", err)
					}
					return p.rawJSON(b)
				}
				rows := make([][]string, 0, len(res.GetTools()))
				for _, d := range res.GetTools() {
					suggested := "-"
					if d.GetStatus() != adminv1.DiscoveryStatus_DISCOVERY_STATUS_MISSING {
						suggested = classLabel(d.GetSuggestedClass())
					}
					rows = append(rows, []string{d.GetName(), statusLabel(d.GetStatus()), suggested,
						dash(toolpin.Short(d.GetLiveHash())), dash(toolpin.Short(d.GetPinnedHash()))})
				}
				if err := p.table([]string{"TOOL", "STATUS", "SUGGESTED CLASS", "LIVE HASH", "PINNED HASH"}, rows); err != nil {
					return err
				}
				if writeDir != "" {
					return p.linef("definitions written to %s", writeDir)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&writeDir, "write-dir", "", "write each live definition to `DIR`/<tool>.json for review")
	return cmd
}

func (a *app) toolApprove() *cobra.Command {
	var upstream, tool, file string
	var fromUpstream, keepDefault bool
	class := newEnumFlag(configv1.ToolClass_TOOL_CLASS_UNSPECIFIED, "TOOL_CLASS_")
	cmd := &cobra.Command{
		Use:   "approve --upstream U --tool T [--class CLASS] [--from-upstream | --definition FILE.json]",
		Short: "Approve the upstream's live definition of a tool as a new pin version",
		Long: `Fetches the tool's live definition from the upstream (as "gwctl upstream
discover" does) and records it as a new active pin version, which lifts a
quarantine once data planes have it. With --definition, FILE (for example
one written by "discover --write-dir" and reviewed) is approved only if the
upstream still serves exactly that definition (the same hash).

The class defaults to the existing pin's. A new tool needs --class: the
upstream's annotations are only shown as a suggestion, never applied.
Like "tool pin", approval is refused when it would break an enabled policy
set.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fromUpstream && file != "" {
				return errors.New("use either --from-upstream or --definition, not both")
			}
			var reviewed []byte
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("read --definition: %w", err)
				}
				reviewed = b
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				return approve(ctx, c, p, upstream, tool, configv1.ToolClass(class.num), file, reviewed, keepDefault)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&upstream, "upstream", "", "upstream name")
	f.StringVar(&tool, "tool", "", "tool name as the upstream reports it")
	f.BoolVar(&fromUpstream, "from-upstream", false, "approve the definition the upstream serves now (the default)")
	f.BoolVar(&keepDefault, "keep-default", false, "record the version without making it the default (stage it: gwctl tool assign, then gwctl tool set-default)")
	f.StringVar(&file, "definition", "", "a reviewed definition; approved only if the upstream still serves it")
	addEnumFlag(cmd, class, "class", "your classification (default: the existing pin's; required for a new tool)")
	for _, name := range []string{"upstream", "tool"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (a *app) upstreamApproveCard() *cobra.Command {
	var file string
	class := newEnumFlag(configv1.ToolClass_TOOL_CLASS_UNSPECIFIED, "TOOL_CLASS_")
	cmd := &cobra.Command{
		Use:   "approve-card NAME [--class CLASS] [--definition FILE.json]",
		Short: "Approve an A2A upstream's live agent card",
		Long: `Fetches the agent card an A2A upstream publishes now (as "gwctl upstream
discover" shows it) and pins it, the same as "gwctl tool approve --upstream
NAME --tool agent-card". Data planes serve an A2A agent only once its card
is approved, and quarantine it (every call refused) while the card it
publishes differs from the approved one, until you approve the new card.

--class is your classification of the agent: read-only if nothing sent to
it can change anything (its messages are then served in degraded mode and
while frozen, and retried), idempotent (retried, refused in degraded mode),
or mutating. It defaults to the existing pin's. With --definition, FILE (a
card you reviewed, e.g. from "discover --write-dir") is approved only if the
agent still publishes exactly that card.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reviewed []byte
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("read --definition: %w", err)
				}
				reviewed = b
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				return approve(ctx, c, p, args[0], toolpin.AgentCardTool, configv1.ToolClass(class.num), file, reviewed, false)
			})
		},
	}
	cmd.Flags().StringVar(&file, "definition", "", "a reviewed card; approved only if the agent still publishes it")
	addEnumFlag(cmd, class, "class", "your classification of the agent (default: the existing pin's; required at first)")
	return cmd
}

// approve fetches tool's live definition from upstream (as discover does)
// and pins it with class (the existing pin's when unspecified). With
// reviewed (read from file), only that definition is approved.
func approve(ctx context.Context, c *client.Client, p *printer, upstream, tool string, cls configv1.ToolClass, file string, reviewed []byte, keepDefault bool) error {
	res, err := discover(ctx, c, upstream)
	if err != nil {
		return err
	}
	var live *adminv1.DiscoveredTool
	for _, d := range res.GetTools() {
		if d.GetName() == tool {
			live = d
		}
	}
	switch {
	case live == nil:
		return fmt.Errorf("upstream %q does not list a tool %q", upstream, tool)
	case live.GetStatus() == adminv1.DiscoveryStatus_DISCOVERY_STATUS_MISSING:
		return fmt.Errorf("upstream %q no longer lists tool %q; there is nothing to approve (delete the pin with \"gwctl tool delete %s %s\")", upstream, tool, upstream, tool)
	}
	if reviewed != nil {
		hash, _, err := toolpin.Hash(reviewed)
		if tool == toolpin.AgentCardTool {
			hash, err = toolpin.HashCard(reviewed)
		}
		if err != nil {
			return fmt.Errorf("--definition %s: %w", file, err)
		}
		if hash != live.GetLiveHash() {
			return fmt.Errorf("--definition %s (%s) is not what upstream %q serves now (%s); review the live definition again",
				file, toolpin.Short(hash), upstream, toolpin.Short(live.GetLiveHash()))
		}
	}
	if cls == configv1.ToolClass_TOOL_CLASS_UNSPECIFIED {
		cls = live.GetPinnedClass()
	}
	if cls == configv1.ToolClass_TOOL_CLASS_UNSPECIFIED && tool == toolpin.AgentCardTool {
		return fmt.Errorf("--class is required for an agent without an approved card: read-only if nothing it is sent can change anything (it is then served in degraded mode and retried), else mutating")
	}
	if cls == configv1.ToolClass_TOOL_CLASS_UNSPECIFIED {
		return fmt.Errorf("--class is required for a tool without a pin; the upstream's annotations suggest %q (a hint from the upstream: classify the tool yourself)",
			classLabel(live.GetSuggestedClass()))
	}
	req := &adminv1.PinToolRequest{Upstream: upstream, Tool: tool, Definition: live.GetDefinition(), Class: cls, KeepDefault: keepDefault}
	resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.PinToolResponse], error) {
		return s.Tool.PinTool(ctx, connect.NewRequest(req))
	})
	if err != nil {
		return err
	}
	if p.structured() {
		return p.message(resp)
	}
	v := versionWithHash(resp.GetPin(), live.GetLiveHash())
	if v == nil {
		v = activeVersion(resp.GetPin())
	}
	note := defaultNote(resp.GetPin(), v)
	if tool == toolpin.AgentCardTool {
		note = "" // a card has no versions to stage
	}
	if err := p.linef("approved %s/%s version %d (%s, %s)%s", upstream, tool, v.GetVersion(), classLabel(v.GetClass()), v.GetDefinitionHash(), note); err != nil {
		return err
	}
	return printWarnings(p, resp.GetWarnings())
}

// discoverAttempt bounds one attempt of a discovery: the control plane
// gives the upstream 20 seconds and a few more to end its session, so a
// slow upstream is not mistaken for a dead control-plane node (which would
// be retried on the next, calling the upstream again).
const discoverAttempt = 30 * time.Second

// discover asks the control plane to list an upstream's tools. A failing
// upstream comes back as FAILED_PRECONDITION with the upstream's failure
// in the message, and is not retried.
func discover(ctx context.Context, c *client.Client, upstream string) (*adminv1.DiscoverUpstreamResponse, error) {
	return client.ReadWithin(ctx, c, discoverAttempt, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DiscoverUpstreamResponse], error) {
		return s.Upstream.DiscoverUpstream(ctx, connect.NewRequest(&adminv1.DiscoverUpstreamRequest{Name: upstream}))
	})
}

// discoveredJSON is a discovered tool in -o json: the definition as the
// upstream sent it, not base64 as protojson would print bytes.
type discoveredJSON struct {
	Name           string          `json:"name"`
	Action         string          `json:"action"`
	Status         string          `json:"status"`
	LiveHash       string          `json:"liveHash,omitempty"`
	PinnedHash     string          `json:"pinnedHash,omitempty"`
	PinnedVersion  int64           `json:"pinnedVersion,omitempty"`
	PinnedClass    string          `json:"pinnedClass,omitempty"`
	SuggestedClass string          `json:"suggestedClass,omitempty"`
	Definition     json.RawMessage `json:"definition,omitempty"`
}

func discoveryJSON(tools []*adminv1.DiscoveredTool) map[string]any {
	out := make([]discoveredJSON, 0, len(tools))
	for _, d := range tools {
		j := discoveredJSON{
			Name: d.GetName(), Action: d.GetAction(), Status: statusLabel(d.GetStatus()),
			LiveHash: d.GetLiveHash(), PinnedHash: d.GetPinnedHash(), PinnedVersion: d.GetPinnedVersion(),
		}
		if d.GetPinnedClass() != configv1.ToolClass_TOOL_CLASS_UNSPECIFIED {
			j.PinnedClass = classLabel(d.GetPinnedClass())
		}
		if len(d.GetDefinition()) > 0 && json.Valid(d.GetDefinition()) {
			j.SuggestedClass, j.Definition = classLabel(d.GetSuggestedClass()), d.GetDefinition()
		}
		out = append(out, j)
	}
	return map[string]any{"tools": out}
}

// writeDefinitions writes each live definition to dir/<tool>.json. Tool
// names are the upstream's: only names that are safe file names are
// written.
func writeDefinitions(dir string, tools []*adminv1.DiscoveredTool) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--write-dir: %w", err)
	}
	for _, d := range tools {
		if len(d.GetDefinition()) == 0 {
			continue
		}
		name := d.GetName()
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0) {
			return fmt.Errorf("--write-dir: tool name %q is not a safe file name", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), d.GetDefinition(), 0o600); err != nil {
			return fmt.Errorf("--write-dir: %w", err)
		}
	}
	return nil
}

func statusLabel(s adminv1.DiscoveryStatus) string { return enumLabel(s.String(), "DISCOVERY_STATUS_") }

func classLabel(c configv1.ToolClass) string { return enumLabel(c.String(), "TOOL_CLASS_") }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quarantines gathers, per "<upstream>/<tool>", the data planes that
// report the tool quarantined against its current active pin (a report
// about an older pin version is out of date). A caller without access to
// data-plane statuses gets none, and err says why.
func quarantines(ctx context.Context, c *client.Client, pins []*configv1.ToolPin) (map[string][]quarantine, error) {
	resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListDataplanesResponse], error) {
		return s.Dataplane.ListDataplanes(ctx, connect.NewRequest(&adminv1.ListDataplanesRequest{}))
	})
	if err != nil {
		return nil, err
	}
	active := map[string]string{}
	for _, pin := range pins {
		active[pin.GetUpstream()+"/"+pin.GetTool()] = activeVersion(pin).GetDefinitionHash()
	}
	out := map[string][]quarantine{}
	for _, d := range resp.GetDataplanes() {
		for _, q := range d.GetQuarantined() {
			key := q.GetUpstream() + "/" + q.GetTool()
			if h, ok := active[key]; ok && h == q.GetPinnedHash() {
				out[key] = append(out[key], quarantine{dataplane: d.GetName(), tool: q})
			}
		}
	}
	for _, qs := range out {
		sort.Slice(qs, func(i, j int) bool { return qs[i].dataplane < qs[j].dataplane })
	}
	return out, nil
}

type quarantine struct {
	dataplane string
	tool      *configsyncv1.QuarantinedTool
}

// quarantineWarning is one line for a quarantined pin.
func quarantineWarning(key string, qs []quarantine) string {
	dps := make([]string, 0, len(qs))
	for _, q := range qs {
		dps = append(dps, q.dataplane)
	}
	q := qs[0].tool
	what := fmt.Sprintf("its upstream definition changed after approval (live %s ≠ pinned %s)", toolpin.Short(q.GetLiveHash()), toolpin.Short(q.GetPinnedHash()))
	if q.GetLiveHash() == "" {
		what = "its upstream no longer lists it"
	}
	return fmt.Sprintf("WARNING: %s is quarantined on data plane(s) %s: %s; review with \"gwctl upstream discover %s\", then \"gwctl tool approve --upstream %s --tool %s\"",
		key, strings.Join(dps, ", "), what, q.GetUpstream(), q.GetUpstream(), q.GetTool())
}
