package authz

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// Request is one authorization question in the gateway's terms: who
// (an agent, on behalf of a user), does what (an action) to which resource,
// with what arguments and in which context. The engine turns it into the
// Cedar request the schema types (see the package documentation).
//
// A protocol maps its operations onto actions and resources: an MCP
// tools/call of "<prefix>__<tool>" is Action "<prefix>__<tool>" on
// [ToolResource]("<prefix>__<tool>"). Other protocols add resource types
// and context attributes here without changing callers that do not use
// them.
type Request struct {
	// Agent is the calling agent's name: the principal Agent::"<name>".
	Agent string
	// User is the verified user the agent acts for (context.user); nil
	// when none.
	User *User
	// Action is the Cedar action's name: for a tool, its action name.
	// Empty means the resource's own action (a tool has exactly one).
	Action string
	// Resource is what the action is done to.
	Resource Resource
	// Arguments are the call's arguments as a JSON object (empty or null:
	// none). [Engine.Decide] decodes them exactly, numbers included, and
	// records the result (see DecodedArguments).
	Arguments json.RawMessage
	// Context is the rest of what policies may read.
	Context Context
	// Placeholders are attribute paths under the arguments ({"card",
	// "number"}; an empty path for the whole arguments) whose values the
	// caller does not know: a recorded call whose record redacted or cut
	// them. Decide puts a placeholder of the schema's type there (the
	// empty string, 0, false, the empty set, …), so a call whose
	// policies do not read those paths decides as it did. Calls a data
	// plane decides never carry any.
	Placeholders [][]string

	// decoded is Arguments decoded by Decide.
	decoded map[string]any
}

// DecodedArguments returns the arguments as [Engine.Decide] decoded them
// (numbers as json.Number), or false when it did not decode them. The
// map is shared: nobody may change it.
func (r *Request) DecodedArguments() (map[string]any, bool) {
	return r.decoded, r.decoded != nil
}

// ResourceType is the Cedar entity type of a resource.
type ResourceType string

// Resource types the engine knows.
const (
	// ResourceTool is a pinned tool, Tool::"<action name>", whose parent
	// is its Upstream. A tool has exactly one action, named like it.
	ResourceTool ResourceType = ResourceType(cedarschema.TypeTool)
	// ResourceRemoteAgent is an A2A upstream with a pinned agent card,
	// RemoteAgent::"<upstream>", whose parent is its Upstream. Its actions
	// are the remote-agent actions (cedarschema.A2AActions), named
	// explicitly.
	ResourceRemoteAgent ResourceType = ResourceType(cedarschema.TypeRemoteAgent)
)

// Resource names one resource of the configuration. Its parents and
// attributes come from the compiled configuration, never from the caller.
type Resource struct {
	Type ResourceType
	ID   string
}

// ToolResource is the resource of the tool whose action name is action.
func ToolResource(action string) Resource {
	return Resource{Type: ResourceTool, ID: action}
}

// RemoteAgentResource is the resource of the A2A upstream named upstream.
func RemoteAgentResource(upstream string) Resource {
	return Resource{Type: ResourceRemoteAgent, ID: upstream}
}

// Context is what the gateway knows about a call beyond who, what and
// which: context.protocol, context.time, context.sourceIp,
// context.degraded and context.findings; for remote-agent actions also
// context.skill, context.messageBytes and context.metadataBytes.
type Context struct {
	// Protocol is the protocol the call arrived over ("mcp").
	Protocol string
	// Time is when the call started. Decide refuses a zero time.
	Time time.Time
	// SourceIP is the caller's address. Decide refuses an invalid one.
	SourceIP netip.Addr
	// Degraded is set while the deciding data plane runs in degraded mode.
	Degraded bool
	// Findings are the names of what runtime inspection found in the
	// call's request under enforced rules ("pii", "pii.email"): the set
	// context.findings. Nil is the empty set.
	Findings []string
	// Model is what a model call adds (ignored for other resources).
	Model ModelContext
	// Skill is the skill a remote-agent request names (context.skill);
	// "" when it names none, then context has no skill.
	Skill string
	// MessageBytes and MetadataBytes are the sizes of the message a
	// remote-agent request sends and of its metadata.
	MessageBytes, MetadataBytes int64
}

// defaultProtocol is the protocol an operator's question defaults to.
const defaultProtocol = "mcp"

// WithDefaults fills what an operator's question leaves out (see `gwctl
// access check`): source address 127.0.0.1, time now, protocol mcp. The
// data plane never uses it: a call it cannot describe is refused.
func (c Context) WithDefaults(now time.Time) Context {
	if !c.SourceIP.IsValid() {
		c.SourceIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if c.Time.IsZero() {
		c.Time = now
	}
	if c.Protocol == "" {
		c.Protocol = defaultProtocol
	}
	return c
}

// User is the end user a call is made on behalf of, as a verified user
// token names them.
type User struct {
	// Source is the identity source that trusted the token; Name the value
	// of its user claim. The user is User::"<source>/<name>".
	Source, Name string
	// Email is "" when the token has none.
	Email string
	// Groups are the user's groups, Group::"<group>" parents of the user.
	Groups []string
}

// userUID is the entity of an on-behalf-of user: User::"<source>/<name>",
// the name of the identity source that trusted the user token, a slash, and
// the value of its user claim. Qualifying by source keeps two issuers'
// "alice" apart; the id is stable for as long as the source keeps its name
// and the issuer its user claim, so policies may name users by it.
func userUID(u *User) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeUser, types.String(u.Source+"/"+u.Name))
}
