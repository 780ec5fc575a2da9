package gwctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/access"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// maxSnapshotFileBytes bounds an --snapshot file.
const maxSnapshotFileBytes = 256 << 20

func (a *app) accessCommand() *cobra.Command {
	cmd := group("access", "Explain authorization: who may call what")
	cmd.Long = `Answers authorization questions with the gateway's one policy engine, so the
answers are the decisions a data plane of that configuration version makes.
The control plane answers them over its current configuration; with
--snapshot (an exported configuration) or --policy (policy files laid over
the current configuration) gwctl answers them itself with the same engine.`
	cmd.AddCommand(a.accessCheck(), a.accessWhoCan(), a.accessExport())
	return cmd
}

// evalSource says where the configuration comes from and which local
// policy files replace its sets.
type evalSource struct {
	snapshot string
	policies []string
	only     bool
}

func (s *evalSource) registerSnapshot(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.snapshot, "snapshot", "", "evaluate an exported configuration (gwctl access export) instead of asking the control plane")
}

func (s *evalSource) registerPolicies(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&s.policies, "policy", nil, "[NAME=]FILE.cedar replacing (or adding) the policy set NAME, default the file's base name (repeatable; gwctl then evaluates itself)")
	f.BoolVar(&s.only, "only", false, "evaluate only the --policy files, not the configuration's own policy sets")
}

// local reports whether the source asks for evaluation in gwctl: an
// exported configuration, or policy files under test.
func (s evalSource) local() bool { return s.snapshot != "" || len(s.policies) > 0 || s.only }

// evaluate runs fn with the decider the source describes: the control
// plane's AccessService, unless the source is local or localOnly is set;
// then an evaluator over the exported configuration, or over the control
// plane's authorization snapshot with the policy files laid over it.
func (a *app) evaluate(cmd *cobra.Command, src evalSource, localOnly bool, fn func(ctx context.Context, d access.Decider, p *printer) error) error {
	files, err := readPolicyFiles(src.policies)
	if err != nil {
		return err
	}
	if src.only && len(files) == 0 {
		return errors.New("--only needs at least one --policy file")
	}
	build := func(ctx context.Context, snap *snapshotv1.Snapshot, p *printer) error {
		ev, err := access.New(snap, files, src.only)
		if err != nil {
			return err
		}
		return fn(ctx, ev, p)
	}
	if src.snapshot != "" {
		s, err := a.settings(cmd)
		if err != nil {
			return err
		}
		snap, err := readSnapshotFile(src.snapshot)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), s.timeout)
		defer cancel()
		return build(ctx, snap, &printer{format: s.output, w: a.out})
	}
	return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
		if !localOnly && !src.local() {
			err := fn(ctx, serverAccess{c: c}, p)
			if connect.CodeOf(err) != connect.CodeUnimplemented {
				return err
			}
			// A control plane older than its AccessService.Check: decide
			// here, with the same engine, over its configuration.
			fmt.Fprintln(a.errOut, "warning: the control plane does not answer access questions (an older version); deciding locally over its configuration")
		}
		snap, err := fetchAuthorizationSnapshot(ctx, c)
		if err != nil {
			return err
		}
		return build(ctx, snap, p)
	})
}

func fetchAuthorizationSnapshot(ctx context.Context, c *client.Client) (*snapshotv1.Snapshot, error) {
	resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetAuthorizationSnapshotResponse], error) {
		return s.Access.GetAuthorizationSnapshot(ctx, connect.NewRequest(&adminv1.GetAuthorizationSnapshotRequest{}))
	})
	if err != nil {
		return nil, err
	}
	return resp.GetSnapshot(), nil
}

// readPolicyFiles reads [NAME=]FILE arguments.
func readPolicyFiles(args []string) ([]access.PolicyFile, error) {
	var out []access.PolicyFile
	names := map[string]bool{}
	for _, arg := range args {
		name, file, ok := strings.Cut(arg, "=")
		if !ok {
			file = arg
			name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		}
		if name == "" || file == "" {
			return nil, fmt.Errorf("--policy %q: want [NAME=]FILE", arg)
		}
		if names[name] {
			return nil, fmt.Errorf("--policy: policy set %q is given twice", name)
		}
		names[name] = true
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--policy: %w", err)
		}
		out = append(out, access.PolicyFile{Name: name, Filename: filepath.Base(file), Source: string(src)})
	}
	return out, nil
}

// readSnapshotFile reads an exported snapshot: protojson, or binary.
func readSnapshotFile(path string) (*snapshotv1.Snapshot, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--snapshot: %w", err)
	}
	if fi.Size() > maxSnapshotFileBytes {
		return nil, fmt.Errorf("--snapshot %s is %d bytes; the limit is %d", path, fi.Size(), maxSnapshotFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--snapshot: %w", err)
	}
	snap := &snapshotv1.Snapshot{}
	if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "{") {
		err = protojson.Unmarshal(data, snap)
	} else {
		err = proto.Unmarshal(data, snap)
	}
	if err != nil {
		return nil, fmt.Errorf("--snapshot %s is not an exported configuration: %w", path, err)
	}
	return snap, nil
}

// userFlags are --user, --email and --group.
type userFlags struct {
	user, email string
	groups      []string
}

func (u *userFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&u.user, "user", "", "on-behalf-of user as SOURCE/NAME (identity source, user claim value)")
	f.StringVar(&u.email, "email", "", "the user's email claim")
	f.StringSliceVar(&u.groups, "group", nil, "the user's groups (repeatable or comma-separated)")
}

func (u *userFlags) parse() (*access.User, error) {
	if u.user == "" {
		if u.email != "" || len(u.groups) > 0 {
			return nil, errors.New("--email and --group need --user")
		}
		return nil, nil
	}
	return access.ParseUser(u.user, u.email, u.groups)
}

func (a *app) accessCheck() *cobra.Command {
	var (
		src                   evalSource
		user                  userFlags
		agent, tool, args, at string
		sourceIP, protocol    string
		degraded              bool
		findings              []string
	)
	cmd := &cobra.Command{
		Use:   "check --agent A [--user SOURCE/NAME] --tool T [--args JSON]",
		Short: "Show the decision a call would get and the policies behind it",
		Long: `Decides one call as a data plane would and prints the decision, the
policies that determined it (with file:line:col), and any evaluation
errors. --args takes a JSON object, or @FILE. Attributes a data plane takes
from the connection default to: source address 127.0.0.1, time now,
protocol mcp, normal mode, no inspection findings (--finding sets
context.findings as runtime inspection would: --finding exfiltration
--finding exfiltration.url_payload). An agent or tool that does not exist
is an error, never a deny.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := access.Question{Agent: agent, Tool: tool, Protocol: protocol, Degraded: degraded, Findings: findings}
			var err error
			if q.User, err = user.parse(); err != nil {
				return err
			}
			if q.Arguments, err = readArgs(args); err != nil {
				return err
			}
			if at != "" {
				if q.Time, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--time must be RFC 3339 (2026-11-26T10:00:00Z): %w", err)
				}
			}
			if sourceIP != "" {
				if q.SourceIP, err = netip.ParseAddr(sourceIP); err != nil {
					return fmt.Errorf("--source-ip: %w", err)
				}
			}
			return a.evaluate(cmd, src, false, func(ctx context.Context, d access.Decider, p *printer) error {
				ans, err := d.Check(ctx, q)
				if err != nil {
					return err
				}
				if p.structured() {
					b, err := json.Marshal(ans)
					if err != nil {
						return err
					}
					return p.rawJSON(b)
				}
				return p.text(explain(ans))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&agent, "agent", "", "agent name (required)")
	f.StringVar(&tool, "tool", "", "tool as agents call it, <prefix>__<tool> (required)")
	f.StringVar(&args, "args", "{}", "arguments: a JSON object, or @FILE")
	f.StringVar(&at, "time", "", "time of the call, RFC 3339 (default now)")
	f.StringVar(&sourceIP, "source-ip", "", "caller's address (default 127.0.0.1)")
	f.StringVar(&protocol, "protocol", "", "protocol of the call (default mcp)")
	f.BoolVar(&degraded, "degraded", false, "decide as a data plane in degraded mode")
	f.StringArrayVar(&findings, "finding", nil, "a name in context.findings, as runtime inspection puts it (repeatable)")
	user.register(cmd)
	src.registerSnapshot(cmd)
	src.registerPolicies(cmd)
	_ = cmd.MarkFlagRequired("agent")
	_ = cmd.MarkFlagRequired("tool")
	return cmd
}

// readArgs reads --args: inline JSON or @FILE.
func readArgs(s string) ([]byte, error) {
	data := []byte(s)
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(rest)
		if err != nil {
			return nil, fmt.Errorf("--args: %w", err)
		}
		data = b
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, errors.New("--args must be a JSON object, e.g. '{\"amount\": 100}'")
	}
	return data, nil
}

// explain renders an answer for people.
func explain(ans access.Answer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (configuration version %d)\n", strings.ToUpper(ans.Decision()), ans.Version)
	switch {
	case len(ans.Policies) > 0 && ans.Allowed:
		b.WriteString("permitted by:\n")
	case len(ans.Policies) > 0:
		b.WriteString("forbidden by:\n")
	case ans.InvalidArguments:
		b.WriteString("the arguments do not fit the tool's pinned schema, so no policy was evaluated\n")
	case len(ans.Errors) > 0:
		b.WriteString("no policy was evaluated or none applied\n")
	default:
		b.WriteString("no policy permits the call (default deny)\n")
	}
	for _, p := range ans.Policies {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	if len(ans.Errors) > 0 {
		b.WriteString("errors:\n")
		for _, e := range ans.Errors {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (a *app) accessWhoCan() *cobra.Command {
	var (
		src      evalSource
		user     userFlags
		tool     string
		degraded bool
	)
	cmd := &cobra.Command{
		Use:   "who-can --tool T [--user SOURCE/NAME]",
		Short: "List the agents the policies could permit to call a tool",
		Long: `Lists every enabled agent that some call of the tool could be permitted
for (on behalf of --user when given), whatever the arguments and time:
the partial evaluation data planes use to filter tools/list.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := user.parse()
			if err != nil {
				return err
			}
			return a.evaluate(cmd, src, false, func(ctx context.Context, d access.Decider, p *printer) error {
				ans, err := d.WhoCan(ctx, access.WhoCanQuestion{Tool: tool, User: u, Degraded: degraded})
				if err != nil {
					return err
				}
				if p.structured() {
					b, err := json.Marshal(ans)
					if err != nil {
						return err
					}
					return p.rawJSON(b)
				}
				rows := make([][]string, 0, len(ans.Agents))
				for _, name := range ans.Agents {
					rows = append(rows, []string{name})
				}
				return p.table([]string{"AGENT"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&tool, "tool", "", "tool as agents call it, <prefix>__<tool> (required)")
	cmd.Flags().BoolVar(&degraded, "degraded", false, "answer for a data plane in degraded mode")
	user.register(cmd)
	src.registerSnapshot(cmd)
	src.registerPolicies(cmd)
	_ = cmd.MarkFlagRequired("tool")
	return cmd
}

func (a *app) accessExport() *cobra.Command {
	return &cobra.Command{
		Use:   "export FILE",
		Short: "Save the configuration authorization reads, for --snapshot",
		Long: `Writes the control plane's authorization snapshot (agents, upstreams, tool
pins and policy sets; no keys, credentials or secrets) as JSON, so that
"gwctl policy test --snapshot FILE" and "gwctl access ... --snapshot FILE"
can run without a control plane, e.g. in a team's CI.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				snap, err := fetchAuthorizationSnapshot(ctx, c)
				if err != nil {
					return err
				}
				b, err := protojson.MarshalOptions{Multiline: true}.Marshal(snap)
				if err != nil {
					return err
				}
				if err := os.WriteFile(args[0], append(b, '\n'), 0o600); err != nil {
					return fmt.Errorf("write %s: %w", args[0], err)
				}
				return p.linef("wrote configuration version %d to %s", snap.GetVersion(), args[0])
			})
		},
	}
}

func (a *app) policyTest() *cobra.Command {
	var (
		src   evalSource
		cases string
	)
	cmd := &cobra.Command{
		Use:   "test -f CASES.yaml [--policy [NAME=]FILE]... [--snapshot FILE]",
		Short: "Check expected decisions against policy sets; exit 1 on a mismatch",
		Long: `Runs each case of CASES.yaml (see "gwctl access check" for what a case
decides) against the current configuration with the --policy files laid
over its policy sets, and prints one line per case. gwctl decides the
cases itself with the gateway's policy engine, over the control plane's
authorization snapshot or an exported one (--snapshot, no control plane
needed). Exits 1 when any case
fails, so a team can run it in CI before "gwctl policy apply". A case:

  cases:
    - name: small payment
      agent: payments-bot
      user: corp/alice          # optional, with groups: [..] and email
      tool: payments__send_payment
      args: {to: acme, amount: 100}
      expect: allow             # or deny
      policies: [payments/small-payments]   # optional, exact`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(cases)
			if err != nil {
				return fmt.Errorf("-f: %w", err)
			}
			parsed, err := access.ParseCases(data)
			if err != nil {
				return fmt.Errorf("%s: %w", cases, err)
			}
			return a.evaluate(cmd, src, true, func(ctx context.Context, d access.Decider, p *printer) error {
				results := access.Run(ctx, d, parsed)
				failed := 0
				for _, r := range results {
					if !r.Passed {
						failed++
					}
				}
				if err := printResults(p, results); err != nil {
					return err
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d cases failed", failed, len(results))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&cases, "file", "f", "", "cases file, YAML or JSON (required)")
	_ = cmd.MarkFlagRequired("file")
	src.registerSnapshot(cmd)
	src.registerPolicies(cmd)
	return cmd
}

func printResults(p *printer, results []access.Result) error {
	if p.structured() {
		type row struct {
			Name   string        `json:"name"`
			Passed bool          `json:"passed"`
			Why    string        `json:"why,omitempty"`
			Answer access.Answer `json:"answer"`
		}
		rows := make([]row, 0, len(results))
		for _, r := range results {
			rows = append(rows, row{Name: r.Case.Name, Passed: r.Passed, Why: r.Why, Answer: r.Answer})
		}
		b, err := json.Marshal(map[string]any{"results": rows})
		if err != nil {
			return err
		}
		return p.rawJSON(b)
	}
	passed := 0
	for i, r := range results {
		name := r.Case.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i+1)
		}
		if r.Passed {
			passed++
			if err := p.linef("PASS  %s: %s", name, r.Answer.Decision()); err != nil {
				return err
			}
			continue
		}
		if err := p.linef("FAIL  %s: %s", name, r.Why); err != nil {
			return err
		}
	}
	return p.linef("%d passed, %d failed", passed, len(results)-passed)
}
