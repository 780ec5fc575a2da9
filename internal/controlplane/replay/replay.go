// Package replay decides recorded calls again with a candidate version of
// a policy set: the call records of a time window in a node's audit store,
// through the gateway's one policy engine (internal/authz) over today's
// configuration with the candidate in place of its set. It reports the
// calls whose decision would change against the decision recorded, the
// candidate's policies that matched no call (dead rules), and the calls
// that cannot be judged, each with its reason:
//
//   - the agent, the upstream or the tool no longer exists (entities are
//     today's, so a call of something gone has nothing to be decided
//     against);
//   - a value the candidate reads was redacted from the record, or the
//     record's arguments were cut at the audit size bound;
//   - the candidate reads context.user, and records keep a user's name
//     but not the groups and email the token carried.
//
// A value the candidate does not read is not needed: a redacted or cut
// one is replaced by a placeholder of its type (authz.Request.Placeholders).
// Calls refused before any policy ran (unknown tool, degraded, frozen,
// arguments that did not fit) have no decision to compare and are counted
// apart.
package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/access"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Records is the audit store as replay reads it. Query must be safe for
// concurrent use; auditstore.Store is one.
type Records interface {
	Query(f auditstore.Filter, pageToken string, limit int) ([]*auditv1.Record, string, error)
}

var _ Records = (*auditstore.Store)(nil)

// Bounds.
const (
	// DefaultMaxExamples and MaxExamples bound the examples of each kind
	// of change and of each reason a call cannot be judged.
	DefaultMaxExamples = 10
	MaxExamples        = 100
	// MaxRecords bounds the call records one replay reads.
	MaxRecords = 1_000_000
	// maxReasons bounds the distinct reasons calls cannot be judged for.
	maxReasons = 1000
	// maxChangeCounts bounds the (agent, tool) pairs counted.
	maxChangeCounts = 10_000
	page            = 1000
)

// Options say what to replay.
type Options struct {
	// Set is the policy set the candidate replaces (or adds).
	Set string
	// Source and Filename are the candidate's.
	Source, Filename string
	// From and To bound the records' time: From ≤ time < To; zero is open.
	From, To time.Time
	// Agent and Tool narrow the calls (Tool: the action name or the
	// upstream's own tool name).
	Agent, Tool string
	// MaxExamples bounds the examples (0: DefaultMaxExamples).
	MaxExamples int
	// MaxRecords bounds the records read (0: MaxRecords).
	MaxRecords int
}

// Report is what a replay found.
type Report struct {
	ConfigVersion uint64
	// Records are the call records in the window that match the filters;
	// Undecided those refused before any policy ran; Judged those
	// decided again.
	Records, Undecided, Judged uint64
	AllowToDeny, DenyToAllow   uint64
	// ChangeCounts are the changes per agent and tool, sorted.
	ChangeCounts []ChangeCount
	// Changes are examples of changed decisions, in store order.
	Changes []Change
	// DeadPolicies are the candidate's policies no judged call matched.
	DeadPolicies []string
	// Unjudged are the reasons calls could not be judged, sorted by count
	// (most first), then reason.
	Unjudged []Unjudged
	// Truncated: the replay stopped at MaxRecords.
	Truncated bool
}

// Changed reports whether any decision would change.
func (r *Report) Changed() bool { return r.AllowToDeny+r.DenyToAllow > 0 }

// ChangeCount is the changes of one agent calling one tool.
type ChangeCount struct {
	Agent, Tool              string
	AllowToDeny, DenyToAllow uint64
}

// Change is one changed decision.
type Change struct {
	Time                time.Time
	Dataplane           string
	Sequence            uint64
	Agent, Tool         string
	Recorded, Candidate string
	RecordedPolicies    []string
	CandidatePolicies   []string
}

// Unjudged is one reason calls could not be judged.
type Unjudged struct {
	Reason   string
	Count    uint64
	Examples []string
}

// Run replays the call records of o's window in recs with o's candidate
// over the configuration st.
func Run(ctx context.Context, st *state.State, recs Records, o Options) (*Report, error) {
	if o.MaxExamples <= 0 {
		o.MaxExamples = DefaultMaxExamples
	}
	o.MaxExamples = min(o.MaxExamples, MaxExamples)
	if o.MaxRecords <= 0 {
		o.MaxRecords = MaxRecords
	}
	eng, err := access.Candidate(st, o.Set, o.Source, o.Filename)
	if err != nil {
		return nil, err
	}
	r := &run{
		st: st, eng: eng, o: o,
		rep:     &Report{ConfigVersion: st.ConfigVersion()},
		reads:   map[[2]string]authz.ContextUse{},
		matched: map[string]bool{},
		reasons: map[string]*Unjudged{},
		changes: map[[2]string]*ChangeCount{},
	}
	filter := auditstore.Filter{From: o.From, To: o.To, Agent: o.Agent}
	token := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch, next, err := recs.Query(filter, token, page)
		if err != nil {
			return nil, fmt.Errorf("read the audit store: %w", err)
		}
		for _, rec := range batch {
			if r.rep.Records >= uint64(o.MaxRecords) {
				r.rep.Truncated = true
				return r.finish(), nil
			}
			r.record(ctx, rec)
		}
		if next == "" {
			break
		}
		token = next
	}
	return r.finish(), nil
}

type run struct {
	st      *state.State
	eng     *authz.Engine
	o       Options
	rep     *Report
	reads   map[[2]string]authz.ContextUse
	matched map[string]bool
	reasons map[string]*Unjudged
	changes map[[2]string]*ChangeCount
}

// isCall reports whether rec records an agent's tool call.
func isCall(rec *auditv1.Record) bool {
	if rec.GetDataplane() == auditstore.ControlPlane {
		return false
	}
	switch rec.GetKind() {
	case auditv1.EventKind_EVENT_KIND_CALL:
		return rec.GetOperation() == "call" && (rec.GetTargetKind() == "tool" || rec.GetTargetKind() == "")
	case auditv1.EventKind_EVENT_KIND_UNSPECIFIED:
		// Before kinds: calls, and admin writes squeezed into call fields.
		return rec.GetProtocol() != "admin" && rec.GetMethod() == "tools/call"
	}
	return false
}

func (r *run) record(ctx context.Context, rec *auditv1.Record) {
	if !isCall(rec) {
		return
	}
	action, why := r.action(rec)
	if r.o.Tool != "" && r.o.Tool != action && r.o.Tool != rec.GetTool() {
		return
	}
	r.rep.Records++
	recorded := rec.GetDecision()
	if recorded != "allow" && recorded != "deny" {
		r.rep.Undecided++
		return
	}
	if why == "" {
		why = r.agentGone(rec.GetAgent())
	}
	if why != "" {
		r.unjudged(why, rec)
		return
	}
	req, why := r.request(rec, action)
	if why != "" {
		r.unjudged(why, rec)
		return
	}
	d, matched := r.eng.Matched(ctx, req)
	if d.Undecided {
		r.unjudged("today's configuration cannot decide the call: "+strings.Join(d.Errors, "; "), rec)
		return
	}
	r.rep.Judged++
	for _, id := range matched {
		r.matched[id] = true
	}
	got := "deny"
	if d.Allowed {
		got = "allow"
	}
	if got == recorded {
		return
	}
	key := [2]string{rec.GetAgent(), action}
	cc := r.changes[key]
	if cc == nil {
		if len(r.changes) >= maxChangeCounts {
			key = [2]string{"other", "other"}
			cc = r.changes[key]
		}
		if cc == nil {
			cc = &ChangeCount{Agent: key[0], Tool: key[1]}
			r.changes[key] = cc
		}
	}
	if got == "deny" {
		r.rep.AllowToDeny++
		cc.AllowToDeny++
	} else {
		r.rep.DenyToAllow++
		cc.DenyToAllow++
	}
	if len(r.rep.Changes) < 2*r.o.MaxExamples {
		r.rep.Changes = append(r.rep.Changes, Change{
			Time: rec.GetTime().AsTime(), Dataplane: rec.GetDataplane(), Sequence: rec.GetSequence(),
			Agent: rec.GetAgent(), Tool: action, Recorded: recorded, Candidate: got,
			RecordedPolicies: slices.Clone(rec.GetPolicies()), CandidatePolicies: d.Policies,
		})
	}
}

// action finds the tool's action name in today's configuration, or why
// there is none.
func (r *run) action(rec *auditv1.Record) (string, string) {
	// A record names the tool as agents do and keeps the upstream's own
	// name in target_own; one written before target_own existed holds the
	// upstream's own name in tool.
	own := rec.GetTargetOwn()
	if own == "" {
		own = rec.GetTool()
	}
	u, ok := r.st.Get(resource.Upstream, rec.GetUpstream())
	if !ok {
		return rec.GetTool(), fmt.Sprintf("upstream %q no longer exists", rec.GetUpstream())
	}
	action := cedarschema.ActionName(resource.EffectivePrefix(u.GetUpstream()), own)
	if _, ok := r.st.Get(resource.ToolPin, resource.ToolPinName(rec.GetUpstream(), own)); !ok {
		return action, fmt.Sprintf("tool %s is no longer pinned", action)
	}
	return action, ""
}

func (r *run) agentGone(name string) string {
	a, ok := r.st.Get(resource.Agent, name)
	switch {
	case !ok:
		return fmt.Sprintf("agent %q no longer exists", name)
	case a.GetAgent().GetDisabled():
		return fmt.Sprintf("agent %q is disabled now", name)
	}
	return ""
}

// request rebuilds the authorization request of rec, or says why it
// cannot be judged.
func (r *run) request(rec *auditv1.Record, action string) (*authz.Request, string) {
	key := [2]string{rec.GetAgent(), action}
	use, ok := r.reads[key]
	if !ok {
		use = r.eng.Reads(rec.GetAgent(), action)
		if len(r.reads) < 100_000 {
			r.reads[key] = use
		}
	}
	req := &authz.Request{
		Agent:    rec.GetAgent(),
		Action:   action,
		Resource: authz.ToolResource(action),
		Context: authz.Context{
			Protocol: rec.GetProtocol(),
			Time:     rec.GetTime().AsTime(),
			Degraded: rec.GetMode() == "degraded",
			Findings: policyFindings(rec),
		},
	}
	ip, err := netip.ParseAddr(rec.GetSourceIp())
	if err != nil {
		return nil, "the record has no source address"
	}
	req.Context.SourceIP = ip
	if u := rec.GetUser(); u != "" {
		if use.User {
			return nil, "the candidate reads context.user, and records keep the user's name but not the groups and email its token carried"
		}
		src, name, _ := strings.Cut(u, "/")
		req.User = &authz.User{Source: src, Name: name}
	}
	raw := strings.TrimSpace(rec.GetArgumentsJson())
	if raw == "" {
		return req, ""
	}
	var args any
	d := json.NewDecoder(strings.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&args); err != nil || d.More() {
		if use.AllArguments || len(use.Arguments) > 0 {
			return nil, fmt.Sprintf("the record's arguments were cut at the audit size bound (or were not JSON), and the candidate reads %s", readsText(use))
		}
		req.Placeholders = [][]string{{}}
		return req, ""
	}
	for _, red := range redacted(args, nil, nil) {
		if use.AllArguments {
			return nil, fmt.Sprintf("the candidate reads the arguments whole, and the record redacted %s", pathText(red))
		}
		for _, p := range use.Arguments {
			if overlaps(p, red) {
				return nil, fmt.Sprintf("the candidate reads %s, which the record redacted", pathText(p))
			}
		}
		req.Placeholders = append(req.Placeholders, red)
	}
	req.Arguments = json.RawMessage(raw)
	return req, ""
}

// redacted lists the attribute paths of the values an audit record
// redacted ("[REDACTED]", "[REDACTED:<kind>]"); a path stops at the first
// array, whose elements have no attribute names.
func redacted(v any, path []string, out [][]string) [][]string {
	switch v := v.(type) {
	case string:
		if v == "[REDACTED]" || strings.HasPrefix(v, "[REDACTED:") {
			out = append(out, slices.Clone(path))
		}
	case map[string]any:
		for _, k := range sortedKeys(v) {
			out = redacted(v[k], append(path, k), out)
		}
	case []any:
		for _, e := range v {
			if n := len(redacted(e, path, nil)); n > 0 {
				return append(out, slices.Clone(path))
			}
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// overlaps reports whether one path is a prefix of the other.
func overlaps(a, b []string) bool {
	n := min(len(a), len(b))
	return slices.Equal(a[:n], b[:n])
}

func pathText(p []string) string {
	if len(p) == 0 {
		return "the arguments"
	}
	return "arguments." + strings.Join(p, ".")
}

func readsText(u authz.ContextUse) string {
	if u.AllArguments {
		return "the arguments whole"
	}
	parts := make([]string, 0, len(u.Arguments))
	for _, p := range u.Arguments {
		parts = append(parts, pathText(p))
	}
	return strings.Join(parts, ", ")
}

func (r *run) unjudged(why string, rec *auditv1.Record) {
	u := r.reasons[why]
	if u == nil {
		if len(r.reasons) >= maxReasons {
			why = "other reasons"
			u = r.reasons[why]
		}
		if u == nil {
			u = &Unjudged{Reason: why}
			r.reasons[why] = u
		}
	}
	u.Count++
	if len(u.Examples) < r.o.MaxExamples {
		u.Examples = append(u.Examples, fmt.Sprintf("%s#%d", rec.GetDataplane(), rec.GetSequence()))
	}
}

func (r *run) finish() *Report {
	rep := r.rep
	prefix := r.o.Set + "/"
	for _, id := range r.eng.PolicyIDs() {
		if strings.HasPrefix(id, prefix) && !r.matched[id] {
			rep.DeadPolicies = append(rep.DeadPolicies, id)
		}
	}
	for _, cc := range r.changes {
		rep.ChangeCounts = append(rep.ChangeCounts, *cc)
	}
	slices.SortFunc(rep.ChangeCounts, func(a, b ChangeCount) int {
		if c := strings.Compare(a.Agent, b.Agent); c != 0 {
			return c
		}
		return strings.Compare(a.Tool, b.Tool)
	})
	for _, u := range r.reasons {
		rep.Unjudged = append(rep.Unjudged, *u)
	}
	slices.SortFunc(rep.Unjudged, func(a, b Unjudged) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return rep
}

// policyFindings is the context.findings the call of rec was decided
// with: the detector and "<detector>.<kind>" of each finding an enforced
// rule made in its request.
func policyFindings(rec *auditv1.Record) []string {
	var out []string
	for _, f := range rec.GetFindings() {
		if f.GetSide() == "request" && f.GetMode() == "enforce" {
			out = append(out, f.GetDetector(), f.GetDetector()+"."+f.GetKind())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
