package authz

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/batch"

	"github.com/portcullis-gw/portcullis/internal/argjson"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// ResourceModel is a model of an LLM upstream, Model::"<name>" (the name
// agents call it by, see ModelName), whose parent is its Upstream. Its one
// action is cedarschema.ActionLLMComplete; an empty action means it.
const ResourceModel ResourceType = ResourceType(cedarschema.TypeModel)

// ModelResource is the resource of the model agents call name.
func ModelResource(name string) Resource { return Resource{Type: ResourceModel, ID: name} }

// ModelName is the name agents call an LLM upstream's model by:
// "<prefix>/<id>" (the upstream's effective prefix), or the id alone for
// an upstream without a prefix.
func ModelName(prefix, id string) string {
	if prefix == "" {
		return id
	}
	return prefix + "/" + id
}

// ModelContext is what a model call adds to the context
// (context.maxTokens, inputTokens, stream, tools, estimatedCost).
type ModelContext struct {
	// MaxTokens is the most output the call may produce; InputTokens the
	// estimate of its input.
	MaxTokens, InputTokens int64
	// Stream is set when the caller asked for a stream.
	Stream bool
	// Tools names the tools the request offers the model.
	Tools []string
	// EstimatedCostNanos is the call's worst case at the model's price,
	// in nano-units of the currency; nil when the model has no price
	// (context.estimatedCost is then absent).
	EstimatedCostNanos *int64
}

// model is a model resource.
type model struct {
	name     string
	upstream string
	id       string
	provider string
}

// indexModels indexes the models of the LLM upstreams. A name two models
// would share is a problem.
func (b *builder) indexModels() {
	b.e.models = map[string]*model{}
	for _, u := range b.snap.GetUpstreams() {
		if u.GetProtocol() != configv1.Protocol_PROTOCOL_LLM {
			continue
		}
		for _, m := range u.GetLlm().GetModels() {
			name := ModelName(EffectivePrefix(u), m.GetId())
			if prev, dup := b.e.models[name]; dup {
				b.problem("model %q of upstream %q: upstream %q serves a model of that name too", argjson.Truncate(name, maxNameEcho), u.GetMeta().GetName(), prev.upstream)
				continue
			}
			b.e.models[name] = &model{name: name, upstream: u.GetMeta().GetName(), id: m.GetId(), provider: providerName(u.GetLlm().GetProvider())}
			b.e.modelList = append(b.e.modelList, name)
		}
	}
	slices.Sort(b.e.modelList)
}

// providerName is the provider attribute of a Model entity.
func providerName(p configv1.LlmProvider) string {
	switch p {
	case configv1.LlmProvider_LLM_PROVIDER_OPENAI:
		return "openai"
	case configv1.LlmProvider_LLM_PROVIDER_ANTHROPIC:
		return "anthropic"
	case configv1.LlmProvider_LLM_PROVIDER_OPENAI_COMPATIBLE:
		return "openai-compatible"
	}
	return "unspecified"
}

// addModelEntities adds every model, in its upstream, to out.
func (b *builder) addModelEntities(out types.EntityMap) {
	for name, m := range b.e.models {
		uid := modelUID(name)
		out[uid] = types.Entity{
			UID:     uid,
			Parents: types.NewEntityUIDSet(upstreamUID(m.upstream)),
			Attributes: types.NewRecord(types.RecordMap{
				"name":     types.String(m.id),
				"provider": types.String(m.provider),
				"readOnly": types.True,
				"version":  types.Long(0),
			}),
		}
	}
}

func modelUID(name string) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeModel, types.String(name))
}

// modelTarget checks a model request's resource and action.
func (e *Engine) modelTarget(req *Request) (*model, error) {
	m, ok := e.models[req.Resource.ID]
	if !ok {
		return nil, kindErrorf(ErrUnknownResource, "no model %q in configuration version %d (models are named <prefix>/<model id>)", argjson.Truncate(req.Resource.ID, maxNameEcho), e.version)
	}
	if req.Action != "" && req.Action != cedarschema.ActionLLMComplete {
		return nil, kindErrorf(ErrInvalidRequest, "action %q does not apply to model %q (its action is %q)", argjson.Truncate(req.Action, maxNameEcho), m.name, cedarschema.ActionLLMComplete)
	}
	return m, nil
}

// decideModel is Decide for a model call. Model decisions are not cached:
// their context (estimated cost, input size) differs from call to call.
func (e *Engine) decideModel(req *Request) Decision {
	creq, err := e.modelRequest(req)
	if err != nil {
		return Decision{Errors: []string{err.Error()}}
	}
	set := e.index.applicable(creq.Action, creq.Principal.ID)
	return e.evaluate(req, creq, &set)
}

// modelRequest builds the Cedar request of a model call.
func (e *Engine) modelRequest(req *Request) (cedar.Request, error) {
	if req.Agent == "" {
		return cedar.Request{}, errors.New("request: no authenticated agent")
	}
	principal := agentUID(req.Agent)
	if _, ok := e.entities[principal]; !ok {
		return cedar.Request{}, fmt.Errorf("request: agent %q is not an enabled agent of configuration version %d", argjson.Truncate(req.Agent, maxNameEcho), e.version)
	}
	m, err := e.modelTarget(req)
	if err != nil {
		return cedar.Request{}, fmt.Errorf("request: %w", err)
	}
	c := &req.Context
	if !c.SourceIP.IsValid() {
		return cedar.Request{}, errors.New("request: the call has no source address")
	}
	if c.Time.IsZero() {
		return cedar.Request{}, errors.New("request: the call has no start time")
	}
	attrs := types.RecordMap{
		cedarschema.ContextArguments:   types.NewRecord(nil),
		cedarschema.ContextProtocol:    types.String(c.Protocol),
		cedarschema.ContextTime:        types.NewDatetime(c.Time),
		cedarschema.ContextSourceIP:    types.IPAddr(netipPrefix(c.SourceIP.Unmap())),
		cedarschema.ContextDegraded:    types.Boolean(c.Degraded),
		cedarschema.ContextFindings:    findingsSet(c.Findings),
		cedarschema.ContextMaxTokens:   types.Long(c.Model.MaxTokens),
		cedarschema.ContextInputTokens: types.Long(c.Model.InputTokens),
		cedarschema.ContextStream:      types.Boolean(c.Model.Stream),
	}
	tools := make([]types.Value, len(c.Model.Tools))
	for i, t := range c.Model.Tools {
		tools[i] = types.String(t)
	}
	attrs[cedarschema.ContextTools] = types.NewSet(tools...)
	if n := c.Model.EstimatedCostNanos; n != nil {
		attrs[cedarschema.ContextEstimatedCost] = costDecimal(*n)
	}
	if req.User != nil {
		attrs[cedarschema.ContextUser] = userUID(req.User)
	}
	if learned, ok := e.learnedFor(req.Agent); ok {
		attrs[cedarschema.ContextLearned] = learned
	}
	creq := cedar.Request{
		Principal: principal,
		Action:    cedarschema.ActionUID(cedarschema.ActionLLMComplete),
		Resource:  modelUID(m.name),
		Context:   types.NewRecord(attrs),
	}
	if err := e.schema.ValidateRequest(creq); err != nil {
		return cedar.Request{}, fmt.Errorf("request: %w", err)
	}
	return creq, nil
}

// costDecimal is a cost in nano-units as a Cedar decimal (four decimal
// places), rounded up so that a policy's ceiling is never undercut, and
// saturating at Cedar's largest decimal.
func costDecimal(nanos int64) types.Decimal {
	const perUnit = 100_000 // nano-units per 0.0001
	units := nanos / perUnit
	if nanos%perUnit > 0 {
		units++
	}
	d, err := types.NewDecimal(units, -4)
	if err != nil {
		d, _ = types.NewDecimal(1<<63-1, -4)
	}
	return d
}

// listableModels is Listable for models: those on which the policies
// could permit req.Agent a call, whatever its size, tools, cost and time.
func (e *Engine) listableModels(ctx context.Context, req *Request) []string {
	p, ok := e.partial(req)
	if !ok {
		return nil
	}
	attrs := types.RecordMap{}
	maps.Copy(attrs, p.context)
	attrs[cedarschema.ContextArguments] = types.NewRecord(nil)
	for _, k := range []types.String{cedarschema.ContextMaxTokens, cedarschema.ContextInputTokens, cedarschema.ContextStream, cedarschema.ContextTools, cedarschema.ContextEstimatedCost} {
		attrs[k] = batch.Ignore()
	}
	context := types.NewRecord(attrs)
	action := cedarschema.ActionUID(cedarschema.ActionLLMComplete)
	set := e.index.applicable(action, p.principal.ID)
	var out []string
	for _, name := range e.modelList {
		if ctx.Err() != nil {
			return nil
		}
		allowed := false
		err := batch.Authorize(ctx, &set, p.entities, batch.Request{
			Principal: p.principal, Action: action, Resource: modelUID(name), Context: context,
		}, func(r batch.Result) error {
			allowed = r.Decision == types.Allow
			return nil
		})
		if err == nil && allowed {
			out = append(out, name)
		}
	}
	return out
}
