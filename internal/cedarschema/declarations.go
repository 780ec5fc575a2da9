package cedarschema

import (
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/ast"
)

// entities declares the gateway's entity types.
func entities() ast.Entities {
	tagsString := ast.String()
	return ast.Entities{
		ast.Ident(TypeTeam):  {},
		ast.Ident(TypeGroup): {},
		ast.Ident(TypeAgent): {
			ParentTypes: []ast.EntityTypeRef{ast.EntityType(TypeTeam)},
			Shape: ast.RecordType{
				"name":  {Type: ast.String()},
				"owner": {Type: ast.String()},
			},
			Tags: tagsString,
		},
		ast.Ident(TypeUser): {
			ParentTypes: []ast.EntityTypeRef{ast.EntityType(TypeGroup)},
			Shape: ast.RecordType{
				"name":  {Type: ast.String()},
				"email": {Type: ast.String(), Optional: true},
			},
			Tags: tagsString,
		},
		ast.Ident(TypeUpstream): {
			Shape: ast.RecordType{
				"name":     {Type: ast.String()},
				"protocol": {Type: ast.String()},
			},
		},
		ast.Ident(TypeList): {
			Shape: ast.RecordType{
				"name":   {Type: ast.String()},
				"values": {Type: ast.Set(ast.String())},
			},
		},
		ast.Ident(TypeTool): {
			ParentTypes: []ast.EntityTypeRef{ast.EntityType(TypeUpstream)},
			Shape: ast.RecordType{
				"name":     {Type: ast.String()},
				"readOnly": {Type: ast.Bool()},
				"version":  {Type: ast.Long()},
			},
		},
	}
}

// remoteAgentEntity declares RemoteAgent. It carries a tool's attributes
// with the same types (name, readOnly, version), so a policy that reads
// them without naming a resource type still validates, and the skills of
// its pinned card.
func remoteAgentEntity() ast.Entity {
	return ast.Entity{
		ParentTypes: []ast.EntityTypeRef{ast.EntityType(TypeUpstream)},
		Shape: ast.RecordType{
			"name":     {Type: ast.String()},
			"readOnly": {Type: ast.Bool()},
			"version":  {Type: ast.Long()},
			"skills":   {Type: ast.Set(ast.String())},
		},
	}
}

// a2aAction declares one remote-agent action, a member of group. Its
// context has an empty arguments record, like the placeholder tool
// action's, so policies over every action that guard arguments with `has`
// keep validating; and the caller's learned sets, like a tool action's, so
// a policy over every action that reads them validates too.
func a2aAction(group string, learned ast.RecordType) ast.Action {
	context := ast.RecordType{
		ContextArguments:     {Type: ast.RecordType{}},
		ContextUser:          {Type: ast.EntityType(TypeUser), Optional: true},
		ContextProtocol:      {Type: ast.String()},
		ContextTime:          {Type: ast.Datetime()},
		ContextSourceIP:      {Type: ast.IPAddr()},
		ContextDegraded:      {Type: ast.Bool()},
		ContextFindings:      {Type: ast.Set(ast.String())},
		ContextSkill:         {Type: ast.String(), Optional: true},
		ContextMessageBytes:  {Type: ast.Long()},
		ContextMetadataBytes: {Type: ast.Long()},
	}
	if learned != nil {
		context[ContextLearned] = ast.Attribute{Type: learned}
	}
	return ast.Action{
		Parents: []ast.ParentRef{ast.ParentRefFromID(types.String(group))},
		AppliesTo: &ast.AppliesTo{
			Principals: []ast.EntityTypeRef{ast.EntityType(TypeAgent)},
			Resources:  []ast.EntityTypeRef{ast.EntityType(TypeRemoteAgent)},
			Context:    context,
		},
	}
}

// toolAction declares one tool's action, a member of the call_tool group.
func toolAction(t Tool, args, learned ast.RecordType) ast.Action {
	a := callAction(args, learned)
	ann := ast.Annotations{}
	if t.Upstream != "" {
		ann["upstream"] = types.String(t.Upstream)
	}
	if t.Name != "" {
		ann["tool"] = types.String(t.Name)
	}
	if len(ann) > 0 {
		a.Annotations = ann
	}
	return a
}

// placeholderAction declares the always-present member of the group; see
// PlaceholderAction.
func placeholderAction(learned ast.RecordType) ast.Action {
	a := callAction(ast.RecordType{}, learned)
	a.Annotations = ast.Annotations{
		"doc": "Placeholder member of call_tool so group policies validate before any tool is pinned; never requested.",
	}
	return a
}

// callAction is an Agent-on-Tool action in the call_tool group whose
// context carries the given arguments record, and the learned record when
// there are learned lists.
func callAction(args, learned ast.RecordType) ast.Action {
	context := ast.RecordType{
		ContextArguments: {Type: args},
		ContextUser:      {Type: ast.EntityType(TypeUser), Optional: true},
		ContextProtocol:  {Type: ast.String()},
		ContextTime:      {Type: ast.Datetime()},
		ContextSourceIP:  {Type: ast.IPAddr()},
		ContextDegraded:  {Type: ast.Bool()},
		ContextFindings:  {Type: ast.Set(ast.String())},
	}
	if learned != nil {
		context[ContextLearned] = ast.Attribute{Type: learned}
	}
	return ast.Action{
		Parents: []ast.ParentRef{ast.ParentRefFromID(CallToolGroup)},
		AppliesTo: &ast.AppliesTo{
			Principals: []ast.EntityTypeRef{ast.EntityType(TypeAgent)},
			Resources:  []ast.EntityTypeRef{ast.EntityType(TypeTool)},
			Context:    context,
		},
	}
}
