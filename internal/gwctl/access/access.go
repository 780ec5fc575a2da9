// Package access answers authorization questions for gwctl: which decision
// a call would get (`access check`), which agents could call a tool
// (`access who-can`), and whether a policy set decides a team's test cases
// as expected (`policy test`).
//
// A [Decider] answers them. gwctl asks the control plane's AccessService by
// default, which decides with the gateway's policy engine over its current
// configuration. [Evaluator] answers locally with the same engine
// (internal/authz) over an authorization snapshot — exported from the
// control plane, or fetched and overlaid with policy files under test — so
// its answers are the decisions a data plane serving that version would
// make: same schema, same argument typing, same policy index, same partial
// evaluation for tool listing. The request attributes a data plane takes
// from the connection (source address, time, protocol, mode) are given by
// the caller, with defaults.
package access

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/authz"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// Decider answers access questions: an [*Evaluator] locally, or the
// control plane. Implementations must be safe for concurrent use.
type Decider interface {
	// Check decides q. Unknown agents and tools are errors, so a typo is
	// never reported as a plain deny; a disabled agent is a deny with the
	// reason in Answer.Errors.
	Check(ctx context.Context, q Question) (Answer, error)
	// WhoCan lists the enabled agents that could be permitted some call
	// of q.Tool (on behalf of q.User when set). An unknown tool is an
	// error.
	WhoCan(ctx context.Context, q WhoCanQuestion) (WhoCanAnswer, error)
}

// PolicyFile is a policy set given as Cedar source, replacing the set of
// the same name (or adding one).
type PolicyFile struct {
	Name, Filename, Source string
}

// Evaluator decides questions locally against one configuration version.
type Evaluator struct {
	e *authz.Engine
}

var _ Decider = (*Evaluator)(nil)

// New compiles snap with files laid over its policy sets; with only set,
// the snapshot's own policy sets are dropped first. Every problem that
// keeps the configuration from compiling is returned, one per line.
func New(snap *snapshotv1.Snapshot, files []PolicyFile, only bool) (*Evaluator, error) {
	snap = proto.CloneOf(snap)
	if only {
		snap.PolicySets = nil
	}
	for _, f := range files {
		ps := &configv1.PolicySet{
			Meta:     &configv1.ResourceMeta{Name: f.Name},
			Source:   f.Source,
			Filename: f.Filename,
		}
		i := slices.IndexFunc(snap.PolicySets, func(p *configv1.PolicySet) bool { return p.GetMeta().GetName() == f.Name })
		if i >= 0 {
			snap.PolicySets[i] = ps
		} else {
			snap.PolicySets = append(snap.PolicySets, ps)
		}
	}
	e, err := authz.Compile(snap, authz.WithDecisionCache(0))
	if err != nil {
		var ae *authz.Error
		if errors.As(err, &ae) {
			return nil, fmt.Errorf("the configuration does not compile:\n- %s", strings.Join(ae.Problems, "\n- "))
		}
		return nil, err
	}
	return &Evaluator{e: e}, nil
}

// Version is the configuration version evaluated.
func (e *Evaluator) Version() uint64 { return e.e.Version() }

// User is an on-behalf-of user as a verified user token would present it.
type User struct {
	// Source is the identity source name, Name the user claim's value.
	Source, Name, Email string
	Groups              []string
}

// Question is one call to decide.
type Question struct {
	Agent string
	User  *User
	// Tool is the action name agents call (prefix__tool).
	Tool string
	// Arguments is the JSON object of arguments ("" or null: none).
	Arguments []byte
	// SourceIP defaults to 127.0.0.1, Time to now, Protocol to "mcp".
	SourceIP netip.Addr
	Time     time.Time
	Protocol string
	// Degraded asks for the decision a data plane in degraded mode makes.
	Degraded bool
	// Findings are what runtime inspection found in the arguments
	// (context.findings): "pii", "pii.email".
	Findings []string
}

// PolicyRef is a determining policy and where it is written.
type PolicyRef struct {
	ID     string `json:"id"`
	Effect string `json:"effect,omitempty"`
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// String is "<set>/<id> (file:line:col)".
func (p PolicyRef) String() string {
	if p.Line == 0 {
		return p.ID
	}
	return fmt.Sprintf("%s (%s:%d:%d)", p.ID, p.File, p.Line, p.Column)
}

// Answer is a decision and what determined it.
type Answer struct {
	Allowed  bool        `json:"allowed"`
	Policies []PolicyRef `json:"policies"`
	// Errors are request or policy evaluation errors.
	Errors           []string `json:"errors,omitempty"`
	InvalidArguments bool     `json:"invalidArguments,omitempty"`
	Version          uint64   `json:"configVersion"`
}

// Decision is "allow" or "deny".
func (a Answer) Decision() string {
	if a.Allowed {
		return "allow"
	}
	return "deny"
}

// WhoCanQuestion asks which agents could call a tool.
type WhoCanQuestion struct {
	// Tool is the action name agents call (prefix__tool).
	Tool string
	User *User
	// Degraded answers for a data plane in degraded mode.
	Degraded bool
}

// WhoCanAnswer is the agents that could call a tool, sorted.
type WhoCanAnswer struct {
	Tool    string   `json:"tool"`
	Agents  []string `json:"agents"`
	Version uint64   `json:"configVersion"`
}

// Check decides q as a data plane would (see Decider).
func (e *Evaluator) Check(ctx context.Context, q Question) (Answer, error) {
	req := &authz.Request{
		Agent:     q.Agent,
		User:      q.User.authz(),
		Action:    q.Tool,
		Resource:  authz.ToolResource(q.Tool),
		Arguments: q.Arguments,
		Context: authz.Context{
			Protocol: q.Protocol,
			Time:     q.Time,
			SourceIP: q.SourceIP,
			Degraded: q.Degraded,
			Findings: q.Findings,
		}.WithDefaults(time.Now()),
	}
	ex, err := e.e.Explain(ctx, req)
	if err != nil {
		return Answer{}, err
	}
	out := Answer{
		Allowed:          ex.Decision.Allowed,
		Errors:           ex.Decision.Errors,
		InvalidArguments: ex.Decision.InvalidArguments,
		Version:          ex.Version,
		Policies:         make([]PolicyRef, 0, len(ex.Policies)),
	}
	for _, p := range ex.Policies {
		out.Policies = append(out.Policies, PolicyRef{ID: p.ID, Effect: p.Effect, File: p.File, Line: p.Line, Column: p.Column})
	}
	return out, nil
}

// WhoCan lists, sorted, the enabled agents the policies could permit to
// call q.Tool (on behalf of q.User when set) for some arguments and time:
// the partial evaluation data planes use to filter tools/list.
func (e *Evaluator) WhoCan(ctx context.Context, q WhoCanQuestion) (WhoCanAnswer, error) {
	agents, err := e.e.WhoCan(ctx, &authz.Request{
		User:     q.User.authz(),
		Action:   q.Tool,
		Resource: authz.ToolResource(q.Tool),
		Context:  authz.Context{Degraded: q.Degraded},
	})
	if err != nil {
		return WhoCanAnswer{}, err
	}
	return WhoCanAnswer{Tool: q.Tool, Agents: nonNil(agents), Version: e.Version()}, nil
}

// authz is the engine's form of u: groups sorted and without repeats, as
// a verified token presents them.
func (u *User) authz() *authz.User {
	if u == nil {
		return nil
	}
	groups := slices.Clone(u.Groups)
	slices.Sort(groups)
	return &authz.User{Source: u.Source, Name: u.Name, Email: u.Email, Groups: slices.Compact(groups)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
