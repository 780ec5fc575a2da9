package gwctl

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditcsv"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// attestationContext prefixes the signed statement (see
// auditv1.SignedAttestation).
const attestationContext = "portcullis.audit.v1.Attestation\n"

// maxAttestationFile bounds what verify-attestation reads.
const maxAttestationFile = 16 << 20

func (a *app) auditCommand() *cobra.Command {
	cmd := group("audit", "Query, verify and attest the audit records data planes uploaded")
	cmd.AddCommand(a.auditQuery(), a.auditVerify(), a.auditAttest(), a.auditVerifyAttestation(), a.auditPublicKey(), a.auditConsumers())
	return cmd
}

func (a *app) auditQuery() *cobra.Command {
	var (
		from, to  string
		req       auditv1.QueryRequest
		limit     int
		pageToken string
		all       bool
	)
	cmd := &cobra.Command{
		Use:   "query [flags]",
		Short: "Find audit records by time, agent, user, tool, upstream, decision, outcome, mode or data plane",
		Long: `Finds audit records in the order the cluster stored them. Filters combine
with AND; an empty filter matches everything. --from and --to are RFC 3339
times ([from, to)).

--tool names a tool as agents see it (bank__get_balance: the name in
tools/list, Cedar policies and 'gwctl access'), or, with --upstream, as its
upstream does (--upstream bank --tool get_balance); both find the same
records, including those data planes wrote before records carried both
names. Records show the agents' name (TOOL) and keep the upstream's own name
in target_own (-o json). A tool or upstream that is not registered now and
that no stored record names is an error, not an empty result, so a typo
cannot pass for "no calls".

--user-not-in-list NAME keeps only calls whose user is not in the value list
NAME (calls without a user count as not in it). The compliance question
"every call of tool X by any agent with a user not in allowlist L since date
D" is:

  gwctl audit query --tool X --user-not-in-list L --from D -o csv > calls.csv

-o table and -o json print one page of --limit records and the token of the
next (--page-token continues; --all fetches every page). -o csv streams
every page; a cell that starts with =, +, -, @, a tab or a carriage return
is prefixed with ' so that a spreadsheet shows it as text, never runs it
as a formula.

Admin writes (policies applied, agents created, tokens issued, secrets set,
restores, freezes...) are records too, in the control plane's own chain:
data plane "control-plane", protocol "admin", agent the admin token id,
method the admin API procedure, tool the operation and resource kind, and
arguments_json the resource's name (never its contents). List them with

  gwctl audit query --dataplane control-plane

Call records' arguments_json has the fields named by the data plane's
--audit-redact replaced with "[REDACTED]" and values that look like
credentials replaced with "[REDACTED:<kind>]".`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return errors.New("--limit must be between 1 and 1000")
			}
			for flag, v := range map[string]string{"--from": from, "--to": to} {
				if v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return fmt.Errorf("%s: want an RFC 3339 time such as 2026-01-31T00:00:00Z: %w", flag, err)
				}
				if flag == "--from" {
					req.From = timestamppb.New(t)
				} else {
					req.To = timestamppb.New(t)
				}
			}
			req.Limit = int32(limit) //nolint:gosec // bounded above
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				page := func(tok string) (*auditv1.QueryResponse, error) {
					r := proto.Clone(&req).(*auditv1.QueryRequest)
					r.PageToken = tok
					return client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[auditv1.QueryResponse], error) {
						return s.Audit.Query(ctx, connect.NewRequest(r))
					})
				}
				if p.format == "csv" {
					return streamCSV(p, page, pageToken)
				}
				out := &auditv1.QueryResponse{}
				tok := pageToken
				for {
					res, err := page(tok)
					if err != nil {
						return err
					}
					out.Records = append(out.Records, res.GetRecords()...)
					out.NextPageToken = res.GetNextPageToken()
					if !all || out.NextPageToken == "" {
						break
					}
					tok = out.NextPageToken
				}
				if p.structured() {
					return p.message(out)
				}
				rows := make([][]string, 0, len(out.GetRecords()))
				for _, r := range out.GetRecords() {
					rows = append(rows, []string{timeText(r.GetTime()), r.GetDataplane(), strconv.FormatUint(r.GetSequence(), 10),
						auditcsv.Actor(r), r.GetUser(), r.GetUpstream(), auditcsv.Target(r), r.GetDecision(), r.GetOutcome(), r.GetMode(),
						cell(auditcsv.Findings(r))})
				}
				if err := p.table([]string{"TIME", "DATAPLANE", "SEQ", "AGENT", "USER", "UPSTREAM", "TOOL", "DECISION", "OUTCOME", "MODE", "FINDINGS"}, rows); err != nil {
					return err
				}
				if out.GetNextPageToken() != "" {
					fmt.Fprintf(a.errOut, "more records: --page-token %s\n", out.GetNextPageToken())
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "records at or after this RFC 3339 time")
	f.StringVar(&to, "to", "", "records before this RFC 3339 time")
	f.StringVar(&req.Agent, "agent", "", "agent name")
	f.StringVar(&req.User, "user", "", "user the agent acted for")
	f.StringVar(&req.Tool, "tool", "", "tool as agents name it (<prefix>__<tool>), or as its upstream does with --upstream")
	f.StringVar(&req.Upstream, "upstream", "", "upstream name")
	f.StringVar(&req.Decision, "decision", "", "allow or deny")
	f.StringVar(&req.Outcome, "outcome", "", "ok, refused or error")
	f.StringVar(&req.Mode, "mode", "", "normal, degraded, stale or starting")
	f.StringVar(&req.Dataplane, "dataplane", "", `data plane name ("control-plane": admin writes)`)
	f.StringVar(&req.UserNotInList, "user-not-in-list", "", "only calls whose user is not in this value list")
	f.StringVar(&req.RecordId, "record", "", "one record by its id, DATAPLANE/SEQUENCE (as alerts name it)")
	f.IntVar(&limit, "limit", 100, "records per page (1-1000)")
	f.StringVar(&pageToken, "page-token", "", "continue from a previous page")
	f.BoolVar(&all, "all", false, "fetch every page (table and json)")
	return cmd
}

// streamCSV writes every page from tok on as CSV (auditcsv: cells that
// would start a spreadsheet formula are escaped), flushing per page.
func streamCSV(p *printer, page func(string) (*auditv1.QueryResponse, error), tok string) error {
	w := auditcsv.NewWriter(p.w)
	if err := w.Write(nil); err != nil {
		return err
	}
	seen := map[string]bool{}
	for {
		res, err := page(tok)
		if err != nil {
			return err
		}
		if err := w.Write(res.GetRecords()); err != nil {
			return err
		}
		tok = res.GetNextPageToken()
		if tok == "" {
			return nil
		}
		if seen[tok] {
			return errors.New("the server repeated a page token; the output is incomplete")
		}
		seen[tok] = true
	}
}

func (a *app) auditVerify() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check that every data plane's audit chain is intact and gap-free on the node asked",
		Long: `Asks one control-plane node to check its audit store: every record's hash
recomputed by the rule on portcullis.audit.v1.Record, every prev_hash the
hash of the record before, sequences without gaps or repeats. Fails, naming
the first bad record (data plane, sequence, why), when one is not. Each node
checks its own copy: ask each with --server to check them all.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				var res *auditv1.VerifyResponse
				err := c.Do(ctx, client.Op{Long: true}, func(ctx context.Context, s *client.Services) error {
					r, err := s.Audit.Verify(ctx, connect.NewRequest(&auditv1.VerifyRequest{}))
					if err == nil {
						res = r.Msg
					}
					return err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					if err := p.message(res); err != nil {
						return err
					}
				} else {
					rows := make([][]string, 0, len(res.GetChains()))
					for _, ch := range res.GetChains() {
						rows = append(rows, []string{ch.GetDataplane(), strconv.FormatUint(ch.GetRecords(), 10),
							strconv.FormatUint(ch.GetFirstSequence(), 10), strconv.FormatUint(ch.GetLastSequence(), 10), hex.EncodeToString(ch.GetHead())})
					}
					if err := p.table([]string{"DATAPLANE", "RECORDS", "FIRST", "LAST", "HEAD"}, rows); err != nil {
						return err
					}
				}
				if pr := res.GetProblem(); !res.GetOk() {
					return fmt.Errorf("audit chain broken at data plane %q record %d: %s", pr.GetDataplane(), pr.GetSequence(), pr.GetReason())
				}
				if !p.structured() {
					return p.linef("every chain is intact and gap-free")
				}
				return nil
			})
		},
	}
}

func (a *app) auditAttest() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "attest --from TIME --to TIME",
		Short: "Have the cluster sign a statement over the audit records of a time range",
		Long: `Prints a signed attestation (JSON) over [from, to): per data plane, the
number of records, the first and last sequence, the first record's
prev_hash and the last one's hash. The node verifies its whole store first
and refuses while any chain is broken. Every node signs with the same
Ed25519 key, derived from the cluster's key-encryption key ('gwctl audit
public-key' prints it). Check it offline with 'gwctl audit verify-attestation'.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ft, err := time.Parse(time.RFC3339, from)
			if err != nil {
				return fmt.Errorf("--from: want an RFC 3339 time: %w", err)
			}
			tt, err := time.Parse(time.RFC3339, to)
			if err != nil {
				return fmt.Errorf("--to: want an RFC 3339 time: %w", err)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				var res *auditv1.AttestResponse
				err := c.Do(ctx, client.Op{Long: true}, func(ctx context.Context, s *client.Services) error {
					r, err := s.Audit.Attest(ctx, connect.NewRequest(&auditv1.AttestRequest{From: timestamppb.New(ft), To: timestamppb.New(tt)}))
					if err == nil {
						res = r.Msg
					}
					return err
				})
				if err != nil {
					return err
				}
				b, err := protojson.Marshal(res.GetAttestation())
				if err != nil {
					return err
				}
				return (&printer{format: "json", w: p.w}).rawJSON(b)
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the range (RFC 3339)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range, excluded (RFC 3339)")
	return cmd
}

func (a *app) auditPublicKey() *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the cluster's attestation public key (base64)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				res, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[auditv1.GetPublicKeyResponse], error) {
					return s.Audit.GetPublicKey(ctx, connect.NewRequest(&auditv1.GetPublicKeyRequest{}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(res)
				}
				return p.linef("%s", base64.StdEncoding.EncodeToString(res.GetPublicKey()))
			})
		},
	}
}

func (a *app) auditVerifyAttestation() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "verify-attestation FILE [--public-key KEYFILE]",
		Short: "Check an attestation's signature against the cluster's public key",
		Long: `Checks, offline with --public-key FILE (the base64 key 'gwctl audit
public-key' prints), or else against the key the control plane (--server)
publishes, that FILE was signed by the cluster and is unaltered, and prints
what it states.

What this proves: the cluster, having verified its whole audit store when it
signed, stated these counts, sequence ranges and chain heads. It recomputes
nothing from records: to tie exported records to the statement, check that
their sequences run gap-free from first to last and that the last one's hash
is the head. An attestation over a tampered range is never issued (attest
refuses while 'audit verify' fails), and editing a signed attestation breaks
its signature.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readFileLimited(args[0], maxAttestationFile)
			if err != nil {
				return err
			}
			sa := &auditv1.SignedAttestation{}
			if err := protojson.Unmarshal(raw, sa); err != nil {
				return fmt.Errorf("%s is not an attestation: %w", args[0], err)
			}
			check := func(trusted []byte, p *printer) error {
				if len(trusted) != ed25519.PublicKeySize {
					return fmt.Errorf("the trusted public key is %d bytes, want %d", len(trusted), ed25519.PublicKeySize)
				}
				if !bytes.Equal(trusted, sa.GetPublicKey()) {
					return errors.New("attestation NOT valid: it was signed with another key than the trusted one")
				}
				if !ed25519.Verify(trusted, append([]byte(attestationContext), sa.GetStatement()...), sa.GetSignature()) {
					return errors.New("attestation NOT valid: the signature does not match the statement (it was altered)")
				}
				att := &auditv1.Attestation{}
				if err := proto.Unmarshal(sa.GetStatement(), att); err != nil {
					return fmt.Errorf("the signed statement does not decode: %w", err)
				}
				if p.structured() {
					return p.message(att)
				}
				if err := p.linef("attestation valid: signed by cluster %s (node %s) at %s for [%s, %s)", att.GetClusterId(), att.GetNodeId(),
					timeText(att.GetIssueTime()), timeText(att.GetFrom()), timeText(att.GetTo())); err != nil {
					return err
				}
				rows := make([][]string, 0, len(att.GetRanges()))
				for _, r := range att.GetRanges() {
					rows = append(rows, []string{r.GetDataplane(), strconv.FormatUint(r.GetRecords(), 10), strconv.FormatUint(r.GetFirstSequence(), 10),
						strconv.FormatUint(r.GetLastSequence(), 10), hex.EncodeToString(r.GetHead())})
				}
				return p.table([]string{"DATAPLANE", "RECORDS", "FIRST", "LAST", "HEAD"}, rows)
			}
			if keyFile != "" {
				kb, err := readFileLimited(keyFile, 4096)
				if err != nil {
					return err
				}
				key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(kb)))
				if err != nil {
					return fmt.Errorf("--public-key %s: want the base64 key 'gwctl audit public-key' prints", keyFile)
				}
				format := a.flags.output
				if format == "csv" {
					format = "table"
				}
				return check(key, &printer{format: format, w: a.out})
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				res, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[auditv1.GetPublicKeyResponse], error) {
					return s.Audit.GetPublicKey(ctx, connect.NewRequest(&auditv1.GetPublicKeyRequest{}))
				})
				if err != nil {
					return err
				}
				return check(res.GetPublicKey(), p)
			})
		},
	}
	cmd.Flags().StringVar(&keyFile, "public-key", "", "file holding the trusted public key (base64)")
	return cmd
}

func readFileLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return buf.Bytes(), nil
}
