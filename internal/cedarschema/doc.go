// Package cedarschema generates the gateway's single Cedar schema from the
// tool registry and its pins, and parses and strictly validates policy sets
// against it.
//
// # The contract
//
// The schema has no namespace. Entity types:
//
//	entity Team;
//	entity Group;
//	entity Agent in [Team] { name: String, owner: String } tags String;
//	entity User in [Group] { name: String, email?: String } tags String;
//	entity Upstream { name: String, protocol: String };
//	entity Tool in [Upstream] { name: String, readOnly: Bool, version: Long };
//	entity Model in [Upstream] { name: String, provider: String, readOnly: Bool, version: Long };
//	entity RemoteAgent in [Upstream] { name: String, readOnly: Bool, version: Long, skills: Set<String> };
//
// Agent labels are entity tags, so policies write
// principal.hasTag("env") && principal.getTag("env") == "prod".
//
// Every pinned tool becomes one action named "<prefix>__<tool>" (see
// [ActionName]) that is a member of the action group Action::"call_tool" and
// applies to principal Agent and resource Tool. Its context is
//
//	{
//		arguments: { ... typed from the tool's pinned input JSON Schema ... },
//		degraded: Bool,
//		findings: Set<String>,
//		protocol: String,
//		sourceIp: ipaddr,
//		time: datetime,
//		user?: User,
//		learned: { "<list>": Set<String>, ... }   // only while some list learns
//	}
//
// findings names what runtime inspection found in the call's arguments
// under an enforced rule: each finding's detector and "<detector>.<kind>"
// ("pii", "pii.payment_card"), so a policy can forbid a whole family or
// one kind: `context.findings.contains("exfiltration")`. It is empty when
// nothing was found.
//
// context.learned has one attribute per value list that learns (see
// [WithLearned]): the caller's set of that list, in the context of every
// tool, remote-agent and model action. Without learned lists the attribute
// is not declared at all, so the schema is what it was before learned lists
// existed; a policy that reads a list that does not learn is refused with
// what to do (see [LearnedRefs]).
//
// # Models (LLM APIs)
//
// A model of an LLM upstream is Model::"<prefix>/<model id>" (the name
// agents call it by), in its Upstream; name is the provider's model id,
// provider "openai", "anthropic" or "openai-compatible", readOnly true and
// version 0 (a tool's attributes, so that policies over every resource
// still validate). A model call is the action "llm:complete", the one
// member of the group Action::"llm_complete", applying to principal Agent
// and resource Model. Its context is the tool actions' (user, protocol,
// time, sourceIp, degraded, findings, learned; arguments an empty record) plus
//
//	maxTokens: Long          the most output the call may produce
//	inputTokens: Long        the gateway's estimate of its input
//	stream: Bool             the caller asked for a stream
//	tools: Set<String>       the tools the request offers the model
//	estimatedCost?: decimal  the worst case at the model's price, rounded
//	                         up to 4 places; absent for a model without one
//
// These declarations do not depend on the pins; [WithoutModels] leaves them
// out.
//
// # Remote agents (A2A)
//
// An A2A upstream is RemoteAgent::"<upstream>", in its Upstream. Its
// attributes come from its pinned agent card: readOnly (the operator's
// classification), version (of the pin) and skills (the card's skill ids);
// name is the upstream's name. The remote-agent actions, each applying to
// principal Agent and resource RemoteAgent, are members of two groups:
//
//	a2a_send: "a2a:send_message" (SendMessage, SendStreamingMessage),
//	          "a2a:cancel_task"  (CancelTask)
//	a2a_read: "a2a:get_task"     (GetTask),
//	          "a2a:list_tasks"   (ListTasks),
//	          "a2a:subscribe_task" (SubscribeToTask)
//
// Their context is the tool actions' (user, protocol, time, sourceIp,
// degraded, findings, learned; arguments is an empty record), plus skill?: String
// (the skill the caller named, when it named one), messageBytes: Long and
// metadataBytes: Long (the sizes of the message sent and of its metadata;
// 0 for actions that send none). These declarations do not depend on the
// pins; [WithoutRemoteAgents] leaves them out.
//
// # Typing tool arguments
//
// JSON Schema "integer" becomes Long, "number" decimal, "string" String,
// "boolean" Bool, "object" a record of its typeable properties (recursively)
// and "array" a Set of its items' type. Properties not listed in "required"
// are optional attributes, so policies must guard them with `has`. Property
// names that are not Cedar identifiers are kept and written quoted; policies
// reach them as context.arguments["odd-name"].
//
// Anything that cannot be typed soundly is left out of the record: a
// property without "type", with a list of types, of type "null", or using
// "$ref", "oneOf", "anyOf", "allOf", "not" or "if"; an object that has no
// "properties" but allows additional or pattern properties (a map); an array
// whose "items" is missing or not typeable; anything nested deeper than
// [MaxDepth]; and every attribute beyond the first [MaxAttributes] of a tool
// (properties are visited in sorted order, so the cut is deterministic). A
// policy that references a left-out argument is refused by strict
// validation, which is the safe outcome: nobody can write a policy whose
// meaning depends on a value the gateway cannot type.
//
// # The empty call_tool group
//
// cedar-go's strict validator (x/exp/schema/validate) refuses
// `permit(principal, action in Action::"call_tool", resource);` with
// "unable to find an applicable action given the policy scope constraints"
// when the group has no member that applies to any principal and resource,
// which is the case on a fresh gateway with no tool pinned. A sensible
// allowlist such as
//
//	permit(principal in Team::"payments", action in Action::"call_tool", resource);
//
// must be accepted before the first pin, so the schema always declares one
// more member of the group, [PlaceholderAction] ("portcullis:placeholder").
// It applies to Agent and Tool and has the common context with an empty
// arguments record. Its name contains ':', which no real action name may
// contain (see [ActionName] and [Generate]), so no request ever uses it.
//
// The placeholder is always present, not only while no tool is pinned, so
// the schema's shape does not flip when the first tool is pinned. A
// consequence: a policy over the whole group (`action in Action::"call_tool"`)
// must guard tool arguments with `has`, for example
// `context.arguments has amount && context.arguments.amount < 500`. That is
// the right rule anyway, because the group covers tools that will be pinned
// later, whose arguments nobody knows yet. `action == Action::"call_tool"`
// stays refused: the group itself is not callable.
//
// # Time of day
//
// context.time is a datetime (UTC). cedar-go's validator and evaluator
// support datetime.toTime() (a duration since midnight), toDate(),
// offset(duration) and durationSince(datetime), and duration comparison with
// < and <=, so business hours in UTC+1 are written
// `context.time.offset(duration("1h")).toTime() < duration("17h")`.
//
// # Building requests
//
// Cedar skips a policy whose evaluation errors, so a forbid such as
// `context.arguments.amount > 500` does not fire when amount arrives as a
// string. Requests must therefore match the schema exactly: the action is
// [ActionUID] of the tool's action name, the resource a Tool, the entity set
// includes [Schema.ActionEntities], and the arguments record holds only the
// typed attributes, converted to their Cedar types. [Schema.ValidateRequest]
// checks all of this, so the gateway can fail closed on a mismatch.
//
// # Policy ids
//
// A policy's id is its @id("...") annotation if present, else policy<N> with
// N its 0-based index in the file. The gateway-wide id is "<set>/<id>".
// Duplicate ids inside one set are an error.
package cedarschema
