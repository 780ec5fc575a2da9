package cedarschema

import (
	"fmt"
	"slices"

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
	// TypeRemoteAgent is an A2A upstream agent, RemoteAgent::"<upstream>",
	// a member of its Upstream: attributes name, readOnly, version (of its
	// pinned card) and skills (the skill ids its pinned card lists).
	TypeRemoteAgent types.EntityType = "RemoteAgent"
	// TypeList is a value list kept in the control plane: attributes name
	// (String) and values (Set<String>).
	TypeList types.EntityType = "List"
	// TypeAction is Cedar's entity type of actions in the empty namespace.
	TypeAction types.EntityType = "Action"
)

// CallToolGroup is the action group every tool action is a member of.
const CallToolGroup = "call_tool"

// The A2A action groups and their actions. Every remote-agent action
// applies to principal Agent and resource RemoteAgent. a2a_send holds what
// may change the world (sending a message, cancelling a task) unless the
// operator classified the agent read-only; a2a_read what only reads
// (getting, listing and following tasks). The actions' names contain ':',
// which no tool action may contain, so they never collide with a tool.
const (
	A2ASendGroup = "a2a_send"
	A2AReadGroup = "a2a_read"

	ActionA2ASendMessage   = "a2a:send_message"
	ActionA2ACancelTask    = "a2a:cancel_task"
	ActionA2AGetTask       = "a2a:get_task"
	ActionA2AListTasks     = "a2a:list_tasks"
	ActionA2ASubscribeTask = "a2a:subscribe_task"
)

// A2AActions lists the remote-agent actions, each with its group, in a
// stable order.
var A2AActions = []struct{ Name, Group string }{
	{ActionA2ASendMessage, A2ASendGroup},
	{ActionA2ACancelTask, A2ASendGroup},
	{ActionA2AGetTask, A2AReadGroup},
	{ActionA2AListTasks, A2AReadGroup},
	{ActionA2ASubscribeTask, A2AReadGroup},
}

// reservedActionNames are group names no tool action may take.
var reservedActionNames = []string{CallToolGroup, A2ASendGroup, A2AReadGroup, LLMCompleteGroup}

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
	// ContextFindings is the set of names of what runtime inspection found
	// in the call's request: each enforced finding's detector and
	// "<detector>.<kind>" ("exfiltration", "exfiltration.url_payload").
	ContextFindings = "findings"
	// ContextLearned is the caller's learned sets: a record with one
	// Set<String> per learned list, present only while some list learns
	// (policies read context.learned["payees"].contains(...)).
	ContextLearned = "learned"
)

// Context attribute names of the remote-agent actions only: the skill the
// caller asked for (optional: a request need not name one), and the sizes
// in bytes of the message it sends (its parts) and of the request's and
// message's metadata (0 for actions that send no message).
const (
	ContextSkill         = "skill"
	ContextMessageBytes  = "messageBytes"
	ContextMetadataBytes = "metadataBytes"
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
	if slices.Contains(reservedActionNames, name) {
		return fmt.Errorf("action name %q is reserved for an action group", name)
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
