package cedarschema

import (
	"fmt"

	"github.com/cedar-policy/cedar-go/types"
)

// Entity types of the gateway schema.
const (
	TypeAgent    types.EntityType = "Agent"
	TypeTeam     types.EntityType = "Team"
	TypeUser     types.EntityType = "User"
	TypeGroup    types.EntityType = "Group"
	TypeUpstream types.EntityType = "Upstream"
	TypeTool     types.EntityType = "Tool"
	// TypeList is a value list kept in the control plane: attributes name
	// (String) and values (Set<String>).
	TypeList types.EntityType = "List"
	// TypeAction is Cedar's entity type of actions in the empty namespace.
	TypeAction types.EntityType = "Action"
)

// CallToolGroup is the action group every tool action is a member of.
const CallToolGroup = "call_tool"

// PlaceholderAction is the member of [CallToolGroup] that the schema always
// declares so that policies over the group validate before any tool is
// pinned. Its ':' cannot occur in a real action name, so no request uses it.
const PlaceholderAction = "portcullis:placeholder"

// Context attribute names of every tool action.
const (
	ContextArguments = "arguments"
	ContextUser      = "user"
	ContextProtocol  = "protocol"
	ContextTime      = "time"
	ContextSourceIP  = "sourceIp"
	ContextDegraded  = "degraded"
	// ContextLearned is the caller's learned sets: a record with one
	// Set<String> per learned list, present only while some list learns
	// (policies read context.learned["payees"].contains(...)).
	ContextLearned = "learned"
)

// MaxActionNameLen is the longest action name Generate accepts.
const MaxActionNameLen = 256

// ActionName returns the action name of a tool: the tool name when prefix is
// empty, else prefix + "__" + tool.
func ActionName(prefix, tool string) string {
	if prefix == "" {
		return tool
	}
	return prefix + "__" + tool
}

// ActionUID returns the Cedar entity UID of the named action, e.g.
// Action::"github__create_issue".
func ActionUID(action string) types.EntityUID {
	return types.NewEntityUID(TypeAction, types.String(action))
}

// checkActionName reports whether name may name a tool action: 1 to
// MaxActionNameLen characters from [A-Za-z0-9_.-] (the MCP tool-name
// alphabet) and not the group's name.
func checkActionName(name string) error {
	if name == "" {
		return fmt.Errorf("empty action name")
	}
	if len(name) > MaxActionNameLen {
		return fmt.Errorf("action name longer than %d bytes", MaxActionNameLen)
	}
	if name == CallToolGroup {
		return fmt.Errorf("action name %q is reserved for the action group", name)
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return fmt.Errorf("action name %q: character %q not allowed (want A-Z a-z 0-9 _ . -)", name, name[i])
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '_' || c == '.' || c == '-'
}
