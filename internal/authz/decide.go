package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/argjson"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// Decision is an authorization decision and what determined it.
type Decision struct {
	Allowed bool
	// Policies are the ids ("<set>/<id>") of the policies that determined
	// the decision, sorted.
	Policies []string
	// Errors are why the request could not be decided (then no policy
	// ran) or the evaluation errors of policies that were skipped, sorted.
	Errors []string
	// InvalidArguments is set when the request was denied before any
	// policy ran because its arguments do not fit the action's schema
	// (malformed JSON, wrong JSON types, values Cedar cannot hold).
	InvalidArguments bool
	// Undecided is set when the request could not be built at all (then
	// Errors says why and no policy ran); InvalidArguments is one case.
	Undecided bool
}

// errInvalidArguments marks request-building failures caused by the
// request's arguments (Decision.InvalidArguments).
var errInvalidArguments = errors.New("invalid arguments")

// Decide decides req with every policy set of this version combined:
// default deny, any satisfied forbid wins.
//
// A request whose Cedar form cannot be built exactly as the schema types
// it — no or a disabled agent, an unknown resource or an action that does
// not apply to it, no source address or time, arguments that do not fit —
// is denied with the reason in Decision.Errors and no policy evaluated;
// policies that fail to evaluate are skipped, as Cedar specifies, and
// listed in Decision.Errors.
//
// Only the policies whose scope can match the request are evaluated (see
// policyIndex), and decisions are remembered by the context values those
// policies read (see decisionKey) unless one of them reads context.time.
// Both give exactly the decision of evaluating every policy.
func (e *Engine) Decide(_ context.Context, req *Request) Decision {
	if req.Resource.Type == ResourceModel {
		return e.decideModel(req)
	}
	var scratchAttrs [16]attr
	p, args, err := e.prepare(req, scratchAttrs[:0])
	if err != nil {
		return undecided(err)
	}
	// Evaluating takes the set as an iterator, which moves it to the heap:
	// evaluate gets a copy, so a cache hit's set stays on the stack.
	set := e.index.applicable(p.action, p.principal.ID)
	if e.cache == nil {
		creq, err := e.build(req, &p, args)
		if err != nil {
			return undecided(err)
		}
		policies := set
		return e.evaluate(req, creq, &policies)
	}
	var scratch [256]byte
	key, cacheable := decisionKey(scratch[:0], req, &p, args, &set)
	if cacheable {
		// A remembered decision was made for a request with this key
		// whose Cedar form was built and validated (build), so this one's
		// context and arguments records are not needed.
		if d, ok := e.cache.get(key); ok {
			return cloneDecision(d)
		}
	}
	creq, err := e.build(req, &p, args)
	if err != nil {
		return undecided(err)
	}
	policies := set
	d := e.evaluate(req, creq, &policies)
	if cacheable {
		e.cache.put(key, cloneDecision(d))
	}
	return d
}

// undecided is the decision on a request whose Cedar form could not be
// built because of err.
func undecided(err error) Decision {
	return Decision{Errors: []string{err.Error()}, InvalidArguments: errors.Is(err, errInvalidArguments), Undecided: true}
}

// evaluate runs Cedar over policies for creq, the Cedar form of req.
func (e *Engine) evaluate(req *Request, creq cedar.Request, policies cedar.PolicyIterator) Decision {
	var entities types.EntityGetter = e.entities
	if req.User != nil {
		entities = overlay{base: e.entities, extra: userEntity(req.User)}
	}
	decision, diag := cedar.Authorize(policies, entities, creq)
	out := Decision{Allowed: decision == cedar.Allow}
	for _, r := range diag.Reasons {
		out.Policies = append(out.Policies, string(r.PolicyID))
	}
	slices.Sort(out.Policies)
	for _, e := range diag.Errors {
		out.Errors = append(out.Errors, policyError(e.PolicyID, e.Message))
	}
	slices.Sort(out.Errors)
	return out
}

// request builds the Cedar request of req: principal Agent, the action, the
// resource, and the context the schema declares. context.user is present
// only when req carries a user (see userUID); evaluate then adds that user
// and its groups to the entities.
func (e *Engine) request(req *Request) (cedar.Request, error) {
	var scratchAttrs [16]attr
	p, args, err := e.prepare(req, scratchAttrs[:0])
	if err != nil {
		return cedar.Request{}, err
	}
	return e.build(req, &p, args)
}

// prepared is the part of a request's Cedar form that the decision cache's
// key reads (see decisionKey) but the arguments' attributes: everything
// but the context record and the arguments record in it, which build
// makes only when policies are evaluated.
type prepared struct {
	principal, action, resource types.EntityUID
	// tool is set for a tool's request (else it is a remote agent's, whose
	// context.arguments is empty).
	tool bool
	// findings is context.findings.
	findings types.Value
}

// prepare checks req and converts what its Cedar form is built from: the
// attributes of context.arguments, appended to attrs sorted by name, and
// the rest. Every refusal of request but the schema's final check happens
// here. The attributes are apart from the rest so that they can stay on
// the caller's stack.
func (e *Engine) prepare(req *Request, attrs []attr) (prepared, []attr, error) {
	if req.Agent == "" {
		return prepared{}, nil, errors.New("request: no authenticated agent")
	}
	principal := agentUID(req.Agent)
	if _, ok := e.entities[principal]; !ok {
		return prepared{}, nil, fmt.Errorf("request: agent %q is not an enabled agent of configuration version %d", argjson.Truncate(req.Agent, maxNameEcho), e.version)
	}
	t, err := e.target(req.Action, req.Resource)
	if err != nil {
		return prepared{}, nil, fmt.Errorf("request: %w", err)
	}
	c := &req.Context
	if !c.SourceIP.IsValid() {
		return prepared{}, nil, errors.New("request: the call has no source address")
	}
	if c.Time.IsZero() {
		return prepared{}, nil, errors.New("request: the call has no start time")
	}
	p := prepared{
		principal: principal,
		action:    cedarschema.ActionUID(t.action),
		resource:  t.resource,
		tool:      t.tool != nil,
		findings:  findingsSet(c.Findings),
	}
	if t.tool != nil {
		args, err := argjson.Decode(req.Arguments)
		if err != nil {
			return prepared{}, nil, fmt.Errorf("%w: %w", errInvalidArguments, err)
		}
		req.decoded = args
		if attrs, err = argumentsAttrs(attrs, args, t.tool.args, placeholderPaths(req.Placeholders)); err != nil {
			return prepared{}, nil, fmt.Errorf("%w: %w", errInvalidArguments, err)
		}
	}
	return p, attrs, nil
}

// noArguments is context.arguments of a request that has none.
var noArguments types.Value = types.NewRecord(nil)

// build makes the Cedar request of req from p and the arguments'
// attributes, and checks it against the schema.
func (e *Engine) build(req *Request, p *prepared, args []attr) (cedar.Request, error) {
	c := &req.Context
	ip := c.SourceIP.Unmap()
	arguments := noArguments
	if p.tool {
		arguments = recordOf(args)
	}
	contextAttrs := types.RecordMap{
		cedarschema.ContextProtocol:  protocolValue(c.Protocol),
		cedarschema.ContextTime:      types.NewDatetime(c.Time),
		cedarschema.ContextSourceIP:  types.IPAddr(netipPrefix(ip)),
		cedarschema.ContextDegraded:  types.Boolean(c.Degraded),
		cedarschema.ContextFindings:  p.findings,
		cedarschema.ContextArguments: arguments,
	}
	if !p.tool {
		if c.Skill != "" {
			contextAttrs[cedarschema.ContextSkill] = types.String(c.Skill)
		}
		contextAttrs[cedarschema.ContextMessageBytes] = types.Long(c.MessageBytes)
		contextAttrs[cedarschema.ContextMetadataBytes] = types.Long(c.MetadataBytes)
	}
	if req.User != nil {
		contextAttrs[cedarschema.ContextUser] = userUID(req.User)
	}
	if learned, ok := e.learnedFor(req.Agent); ok {
		contextAttrs[cedarschema.ContextLearned] = learned
	}
	creq := cedar.Request{
		Principal: p.principal,
		Action:    p.action,
		Resource:  p.resource,
		Context:   types.NewRecord(contextAttrs),
	}
	// Belt and braces: a request that does not conform would let Cedar skip
	// an erroring forbid, so refuse it instead.
	if err := e.schema.ValidateRequest(creq); err != nil {
		return cedar.Request{}, fmt.Errorf("request: %w", err)
	}
	return creq, nil
}

// protocolValues are the protocols' names as Cedar values, made once:
// a string in a Value interface is an allocation per call otherwise.
var protocolValues = map[string]types.Value{"mcp": types.String("mcp"), "a2a": types.String("a2a"), "llm": types.String("llm")}

// protocolValue is context.protocol.
func protocolValue(p string) types.Value {
	if v, ok := protocolValues[p]; ok {
		return v
	}
	return types.String(p)
}

// noFindings is the empty context.findings of most calls.
var noFindings types.Value = types.NewSet()

// findingsSet is context.findings: the names as a Cedar set of strings.
func findingsSet(names []string) types.Value {
	if len(names) == 0 {
		return noFindings
	}
	vals := make([]types.Value, len(names))
	for i, n := range names {
		vals[i] = types.String(n)
	}
	return types.NewSet(vals...)
}

// maxNameEcho bounds a caller-given name echoed in an error.
const maxNameEcho = cedarschema.MaxActionNameLen

// target is what a request is about: its action and resource, and the
// tool or remote agent that resource is.
type target struct {
	action   string
	resource types.EntityUID
	tool     *tool
	agent    *remoteAgent
}

// target finds the resource of a request and checks that action applies
// to it; an empty action is the resource's own. A tool has one action,
// named like the tool; a remote agent the remote-agent actions, named
// explicitly.
func (e *Engine) target(action string, r Resource) (target, error) {
	switch r.Type {
	case ResourceTool:
		t, ok := e.tools[r.ID]
		if !ok {
			return target{}, kindErrorf(ErrUnknownResource, "no tool %q in configuration version %d (tools are named <prefix>__<tool>)", argjson.Truncate(r.ID, maxNameEcho), e.version)
		}
		if action != t.action && action != "" {
			return target{}, kindErrorf(ErrInvalidRequest, "action %q does not apply to tool %q (a tool's action is named like the tool)", argjson.Truncate(action, maxNameEcho), t.action)
		}
		return target{action: t.action, resource: toolUID(t.action), tool: t}, nil
	case ResourceRemoteAgent:
		a, ok := e.remoteAgents[r.ID]
		if !ok {
			return target{}, kindErrorf(ErrUnknownResource, "no remote agent %q in configuration version %d (an A2A upstream with a pinned agent card)", argjson.Truncate(r.ID, maxNameEcho), e.version)
		}
		if !isA2AAction(action) {
			return target{}, kindErrorf(ErrInvalidRequest, "action %q does not apply to remote agent %q (its actions are %s)", argjson.Truncate(action, maxNameEcho), a.name, a2aActionNames())
		}
		return target{action: action, resource: remoteAgentUID(a.name), agent: a}, nil
	case "":
		return target{}, kindErrorf(ErrInvalidRequest, "the request names no resource type")
	}
	return target{}, kindErrorf(ErrUnknownResource, "resource type %q is not one this gateway serves", argjson.Truncate(string(r.Type), maxNameEcho))
}

// isA2AAction reports whether action is a remote-agent action.
func isA2AAction(action string) bool {
	for _, a := range cedarschema.A2AActions {
		if a.Name == action {
			return true
		}
	}
	return false
}

func a2aActionNames() string {
	names := make([]string, len(cedarschema.A2AActions))
	for i, a := range cedarschema.A2AActions {
		names[i] = a.Name
	}
	return strings.Join(names, ", ")
}

// placeholderPaths renders placeholder paths the way conversion names
// attributes ("arguments/a/b"); nil for none.
func placeholderPaths(paths [][]string) map[string]bool {
	if len(paths) == 0 {
		return nil
	}
	out := make(map[string]bool, len(paths))
	for _, p := range paths {
		s := "arguments"
		for _, seg := range p {
			s += "/" + argjson.Segment(seg)
		}
		out[s] = true
	}
	return out
}
