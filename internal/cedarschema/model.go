package cedarschema

import (
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/ast"
)

// TypeModel is a model of an LLM upstream, Model::"<name>" (the name
// agents call it by, "<prefix>/<model id>"), a member of its Upstream:
// attributes name (the provider's model id), provider ("openai",
// "anthropic", "openai-compatible"), and readOnly and version as a tool
// has them (true and 0: a completion changes nothing outside the
// gateway), so that a policy reading them without naming a resource type
// still validates.
const TypeModel types.EntityType = "Model"

// The model action group and its action. A model call (Chat Completions,
// Responses or Messages) is the action "llm:complete" on the Model; its
// ':' keeps it from ever colliding with a tool action.
const (
	LLMCompleteGroup  = "llm_complete"
	ActionLLMComplete = "llm:complete"
)

// Context attribute names of the model action only.
const (
	// ContextMaxTokens is the most output the call may produce: the
	// request's output limit (times Chat Completions' n), or the model's
	// output cap when the request sets none.
	ContextMaxTokens = "maxTokens"
	// ContextInputTokens is the gateway's estimate of the call's input.
	ContextInputTokens = "inputTokens"
	// ContextStream is whether the caller asked for a stream.
	ContextStream = "stream"
	// ContextTools names the tools the request offers the model.
	ContextTools = "tools"
	// ContextEstimatedCost is the call's worst case at the model's price
	// (input estimate and maxTokens), in the price table's currency,
	// rounded up to four decimal places; absent when the model has no
	// price.
	ContextEstimatedCost = "estimatedCost"
)

// WithoutModels leaves the model declarations (Model, the llm_complete
// group and its action) out: the schema of a control-plane cluster some of
// whose voters predate them, so that every replica validates policies
// alike (see clusterversion.LLMBrokering).
func WithoutModels() Option { return func(o *genOptions) { o.noModels = true } }

// modelEntity declares Model.
func modelEntity() ast.Entity {
	return ast.Entity{
		ParentTypes: []ast.EntityTypeRef{ast.EntityType(TypeUpstream)},
		Shape: ast.RecordType{
			"name":     {Type: ast.String()},
			"provider": {Type: ast.String()},
			"readOnly": {Type: ast.Bool()},
			"version":  {Type: ast.Long()},
		},
	}
}

// modelAction declares llm:complete, in the llm_complete group. Its
// context has an empty arguments record, like the placeholder tool
// action's, so that policies over every action that guard arguments with
// `has` keep validating; and the caller's learned sets when some list
// learns, like every action's.
func modelAction(learned ast.RecordType) ast.Action {
	context := ast.RecordType{
		ContextArguments:     {Type: ast.RecordType{}},
		ContextUser:          {Type: ast.EntityType(TypeUser), Optional: true},
		ContextProtocol:      {Type: ast.String()},
		ContextTime:          {Type: ast.Datetime()},
		ContextSourceIP:      {Type: ast.IPAddr()},
		ContextDegraded:      {Type: ast.Bool()},
		ContextFindings:      {Type: ast.Set(ast.String())},
		ContextMaxTokens:     {Type: ast.Long()},
		ContextInputTokens:   {Type: ast.Long()},
		ContextStream:        {Type: ast.Bool()},
		ContextTools:         {Type: ast.Set(ast.String())},
		ContextEstimatedCost: {Type: ast.Decimal(), Optional: true},
	}
	if learned != nil {
		context[ContextLearned] = ast.Attribute{Type: learned}
	}
	return ast.Action{
		Parents: []ast.ParentRef{ast.ParentRefFromID(LLMCompleteGroup)},
		AppliesTo: &ast.AppliesTo{
			Principals: []ast.EntityTypeRef{ast.EntityType(TypeAgent)},
			Resources:  []ast.EntityTypeRef{ast.EntityType(TypeModel)},
			Context:    context,
		},
	}
}

// addModels declares the model part of the schema into ents and actions.
func addModels(ents ast.Entities, actions ast.Actions, learned ast.RecordType) {
	ents[ast.Ident(TypeModel)] = modelEntity()
	actions[LLMCompleteGroup] = ast.Action{}
	actions[ActionLLMComplete] = modelAction(learned)
}
