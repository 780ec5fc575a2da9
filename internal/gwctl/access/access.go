// Package access answers authorization questions offline, for gwctl: which
// decision a call would get (`access check`), which agents could call a tool
// (`access who-can`), and whether a policy set decides a team's test cases
// as expected (`policy test`).
//
// It evaluates with the data plane's own compiled configuration
// (internal/dataplane/config) over the control plane's authorization
// snapshot, so its answers are the decisions a data plane serving that
// version would make: same schema, same argument typing, same policy index,
// same partial evaluation for tool listing. Only the request attributes a
// data plane takes from the connection (source address, time, protocol,
// mode) are given here by the caller, with defaults.
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

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// PolicyFile is a policy set given as Cedar source, replacing the set of
// the same name (or adding one).
type PolicyFile struct {
	Name, Filename, Source string
}

// Evaluator decides questions against one configuration version.
type Evaluator struct {
	c      *config.Compiled
	agents map[string]*configv1.Agent
}

// New compiles snap with files laid over its policy sets; with only set,
// the snapshot's own policy sets are dropped first. Every problem the data
// plane would refuse the configuration for is returned, one per line.
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
	data, err := proto.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("encode the configuration: %w", err)
	}
	c, err := config.Compile(data, config.WithDecisionCache(0))
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("the configuration does not compile:\n- %s", strings.Join(ce.Problems, "\n- "))
		}
		return nil, err
	}
	agents := map[string]*configv1.Agent{}
	for _, a := range snap.GetAgents() {
		agents[a.GetMeta().GetName()] = a
	}
	return &Evaluator{c: c, agents: agents}, nil
}

// Version is the configuration version evaluated.
func (e *Evaluator) Version() uint64 { return e.c.Version() }

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
}

// PolicyRef is a determining policy and where it is written.
type PolicyRef struct {
	ID     string `json:"id"`
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

// Check decides q as a data plane would. Unknown agents and tools are
// errors, so a typo is never reported as a plain deny; a disabled agent is
// a deny with the reason in Errors.
func (e *Evaluator) Check(ctx context.Context, q Question) (Answer, error) {
	call, err := e.call(q.Agent, q.User, q.Protocol, q.SourceIP, q.Degraded)
	if err != nil {
		return Answer{}, err
	}
	if _, ok := e.c.Tool(q.Tool); !ok {
		return Answer{}, fmt.Errorf("no tool %q in configuration version %d (tools are named <prefix>__<tool>; see gwctl tool list)", q.Tool, e.Version())
	}
	call.Op, call.Target = pipeline.OpCall, pipeline.Target{Kind: pipeline.KindTool, Name: q.Tool}
	call.Arguments = q.Arguments
	if len(call.Arguments) == 0 {
		call.Arguments = []byte("{}")
	}
	call.Start = q.Time
	if call.Start.IsZero() {
		call.Start = time.Now()
	}
	d := e.c.Authorize(ctx, call)
	out := Answer{Allowed: d.Allowed, Errors: d.Errors, InvalidArguments: d.InvalidArguments, Version: e.Version()}
	for _, id := range d.Policies {
		out.Policies = append(out.Policies, e.ref(id))
	}
	return out, nil
}

// WhoCan lists, sorted, the enabled agents the policies could permit to
// call tool (on behalf of user when set) for some arguments and time: the
// partial evaluation data planes use to filter tools/list.
func (e *Evaluator) WhoCan(ctx context.Context, tool string, user *User, degraded bool) ([]string, error) {
	if _, ok := e.c.Tool(tool); !ok {
		return nil, fmt.Errorf("no tool %q in configuration version %d (tools are named <prefix>__<tool>; see gwctl tool list)", tool, e.Version())
	}
	var out []string
	for name, a := range e.agents {
		if a.GetDisabled() {
			continue
		}
		call, err := e.call(name, user, "", netip.Addr{}, degraded)
		if err != nil {
			return nil, err
		}
		if e.c.Permissible(ctx, call, tool) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// call builds the request part of a pipeline call.
func (e *Evaluator) call(agent string, user *User, protocol string, ip netip.Addr, degraded bool) (*pipeline.Call, error) {
	a, ok := e.agents[agent]
	if !ok {
		return nil, fmt.Errorf("no agent %q in configuration version %d", agent, e.Version())
	}
	if !ip.IsValid() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if protocol == "" {
		protocol = "mcp"
	}
	call := &pipeline.Call{Protocol: protocol, Method: "tools/call", Agent: a, SourceIP: ip, Config: e.c, Mode: configsyncv1.Mode_MODE_NORMAL}
	if degraded {
		call.Mode = configsyncv1.Mode_MODE_DEGRADED
	}
	if user != nil {
		if user.Source == "" || user.Name == "" {
			return nil, errors.New("a user needs an identity source and a name (SOURCE/NAME)")
		}
		groups := slices.Clone(user.Groups)
		slices.Sort(groups)
		call.User = &pipeline.User{Source: user.Source, Name: user.Name, Email: user.Email, Groups: slices.Compact(groups)}
	}
	return call, nil
}

func (e *Evaluator) ref(id string) PolicyRef {
	file, line, col, _ := e.c.PolicyPosition(id)
	return PolicyRef{ID: id, File: file, Line: line, Column: col}
}
