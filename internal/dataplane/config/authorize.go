package config

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// errInvalidArguments marks request-building failures caused by the call's
// arguments, which the Authorize stage reports as invalid_arguments.
var errInvalidArguments = errors.New("invalid arguments")

// authorizeTool decides a tool call with every policy set of this version combined:
// default deny, any satisfied forbid wins. Decision.Policies are the ids
// ("<set>/<id>") of the policies that determined the decision, sorted.
//
// A call whose Cedar request cannot be built exactly as the schema types it
// (see the package documentation) is denied with the reason in
// Decision.Errors and no policy evaluated; policies that fail to evaluate
// are skipped, as Cedar specifies, and listed in Decision.Errors.
//
// Only the policies whose scope can match the call are evaluated (see
// policyIndex), and decisions are remembered by the context values those
// policies read (see decisionKey) unless one of them reads context.time.
// Both give exactly the decision of evaluating every policy.
func (c *Compiled) authorizeTool(call *pipeline.Call) pipeline.Decision {
	req, err := c.request(call)
	if err != nil {
		return pipeline.Decision{Errors: []string{err.Error()}, InvalidArguments: errors.Is(err, errInvalidArguments)}
	}
	set := c.index.applicable(req.Action, req.Principal.ID)
	if c.cache == nil {
		return c.evaluate(call, req, &set)
	}
	var scratch [256]byte
	key, cacheable := decisionKey(scratch[:0], call, req, &set)
	if cacheable {
		if d, ok := c.cache.get(key); ok {
			return cloneDecision(d)
		}
	}
	d := c.evaluate(call, req, &set)
	if cacheable {
		c.cache.put(key, cloneDecision(d))
	}
	return d
}

// evaluate runs Cedar over policies for req.
func (c *Compiled) evaluate(call *pipeline.Call, req cedar.Request, policies cedar.PolicyIterator) pipeline.Decision {
	var entities types.EntityGetter = c.entities
	if call.User != nil {
		u := userEntity(call.User)
		entities = overlay{base: c.entities, extra: u}
	}
	decision, diag := cedar.Authorize(policies, entities, req)
	out := pipeline.Decision{Allowed: decision == cedar.Allow}
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

// request builds the Cedar request of a call: principal Agent, action and
// resource Tool of the called action, and the context the schema declares.
// context.user is present only when the call carries a verified user (see
// userUID); Authorize then adds that user and its groups to the entities.
func (c *Compiled) request(call *pipeline.Call) (cedar.Request, error) {
	if call.Agent == nil {
		return cedar.Request{}, errors.New("request: no authenticated agent")
	}
	name := call.Agent.GetMeta().GetName()
	principal := agentUID(name)
	if _, ok := c.entities[principal]; !ok {
		return cedar.Request{}, fmt.Errorf("request: agent %q is not an enabled agent of configuration version %d", name, c.Version())
	}
	t, ok := c.tools[call.Target.Name]
	if !ok {
		return cedar.Request{}, fmt.Errorf("request: no tool %q in configuration version %d", truncate(call.Target.Name, cedarschema.MaxActionNameLen), c.Version())
	}
	if !call.SourceIP.IsValid() {
		return cedar.Request{}, errors.New("request: the call has no source address")
	}
	if call.Start.IsZero() {
		return cedar.Request{}, errors.New("request: the call has no start time")
	}
	args, err := decodeArguments(call.Arguments)
	if err != nil {
		return cedar.Request{}, fmt.Errorf("%w: %w", errInvalidArguments, err)
	}
	call.SetDecodedArguments(args) // the Validate stage's input too
	record, err := argumentsRecord(args, t.args)
	if err != nil {
		return cedar.Request{}, fmt.Errorf("%w: %w", errInvalidArguments, err)
	}
	ip := call.SourceIP.Unmap()
	contextAttrs := types.RecordMap{
		cedarschema.ContextArguments: record,
		cedarschema.ContextProtocol:  types.String(call.Protocol),
		cedarschema.ContextTime:      types.NewDatetime(call.Start),
		cedarschema.ContextSourceIP:  types.IPAddr(netipPrefix(ip)),
		cedarschema.ContextDegraded:  types.Boolean(call.Mode == configsyncv1.Mode_MODE_DEGRADED),
	}
	if call.User != nil {
		contextAttrs[cedarschema.ContextUser] = userUID(call.User)
	}
	req := cedar.Request{
		Principal: principal,
		Action:    cedarschema.ActionUID(t.Action),
		Resource:  toolUID(t.Action),
		Context:   types.NewRecord(contextAttrs),
	}
	// Belt and braces: a request that does not conform would let Cedar skip
	// an erroring forbid, so refuse it instead.
	if err := c.schema.ValidateRequest(req); err != nil {
		return cedar.Request{}, fmt.Errorf("request: %w", err)
	}
	return req, nil
}
