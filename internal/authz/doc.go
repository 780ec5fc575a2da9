// Package authz is the gateway's one policy engine: it compiles a
// configuration's schema, policy sets and entities, and answers decisions,
// partial evaluations and explanations. The data plane decides every call
// with it (dataplane/config adapts the pipeline to it), the control plane
// answers AccessService with it (controlplane/access), and gwctl evaluates
// policy files under test with it (gwctl/access). It imports neither plane.
//
// [Compile] reads the authorization part of a snapshot — agents, upstreams,
// tool pins, value lists, policy sets — and refuses it with an [*Error]
// naming every problem. [Engine.Decide] decides one [Request];
// [Engine.Listable], [Engine.Permissible] and [Engine.WhoCan] answer
// "could some call be permitted?" without the call's arguments;
// [Engine.Explain] decides and locates the determining policies. An Engine
// is immutable per configuration version and safe for concurrent use.
//
// # The Cedar contract, as built
//
// The schema (see package cedarschema, generated from the pins) has no
// namespace. Entities, all built by Compile from the configuration:
//
//   - Agent::"<name>" in Team::"<team>", attributes name and owner, its
//     labels as tags (principal.getTag("env")). Only enabled agents exist;
//     a disabled agent's requests are denied before any policy runs.
//   - Team::"<team>", Group::"<group>".
//   - User::"<source>/<name>" in Group::"<group>" for each of its groups,
//     attributes name and (when the token has one) email: the verified user
//     an agent acts for, added per request. <source> is the identity source
//     that trusted the user token, <name> its user claim.
//   - Upstream::"<name>", attributes name and protocol ("mcp", "a2a",
//     "llm").
//   - Tool::"<prefix>__<tool>" in Upstream::"<upstream>", attributes name,
//     readOnly and version (of the pin's default version, whichever
//     version the calling agent is assigned).
//   - List::"<name>", attributes name and values (a set of strings): the
//     value lists, read as List::"payees".values.contains(...).
//   - RemoteAgent::"<upstream>" in Upstream::"<upstream>" for each A2A
//     upstream with a pinned agent card, attributes name, readOnly and
//     version (of the card pin) and skills (the card's skill ids).
//
// Actions: one per pinned tool, Action::"<prefix>__<tool>" (the upstream's
// tool prefix, by default its name), each a member of the group
// Action::"call_tool", applying to principal Agent and resource Tool. A
// request names the action and the resource; for a tool they are the same
// name, and an empty action means the resource's own.
//
// Remote agents have the actions "a2a:send_message" and "a2a:cancel_task"
// (group Action::"a2a_send") and "a2a:get_task", "a2a:list_tasks" and
// "a2a:subscribe_task" (group Action::"a2a_read"), applying to principal
// Agent and resource RemoteAgent; a request names one explicitly. Their
// context is the common part below with an empty arguments record, plus
// skill (String, present only when the caller named a skill),
// messageBytes and metadataBytes (Long).
//
// Context of every tool action:
//
//   - arguments: the call's arguments, a record typed from the pinned input
//     JSON Schema (integer → Long, number → decimal, string → String,
//     boolean → Bool, object → Record, array → Set; optional properties are
//     optional attributes) — of every version in use when agents are
//     assigned different ones: a property missing from any of them is
//     optional, one they type differently is left out (see
//     cedarschema.Tool). Conversion reads the types back from the
//     generated schema, so it cannot drift from what policies were
//     validated against; attributes the schema leaves untyped are dropped.
//     Numbers are converted exactly from their JSON text (package argjson):
//     a Long must be integral and fit in 64 bits, a decimal have at most
//     four decimal places and lie within Cedar's range. Anything that does
//     not fit — a wrong JSON type, a missing required argument, a number
//     Cedar cannot hold, a duplicate object key — denies the request with
//     Decision.InvalidArguments rather than letting Cedar skip a forbid
//     policy that would have errored.
//   - protocol (String), time (datetime, the call's start), sourceIp
//     (ipaddr), degraded (Bool: the deciding data plane runs degraded).
//   - user (User), present only when the call is made on behalf of a
//     verified user, so policies guard it with `context has user`.
//   - learned, while some value list learns: a record with one Set<String>
//     per learned list, the caller's set — the list's own values and what
//     the caller's scope (agent, team or global) learned (see learned.go).
//
// Decisions: every policy set of the version is combined into one (policy
// ids "<set>/<id>", the id being the @id annotation or policy<N>); default
// deny; a satisfied forbid wins. A Decision carries the determining policy
// ids and the errors of policies Cedar skipped. A request is validated
// against the schema before evaluation, so it never reaches Cedar in a
// shape policies were not checked against.
//
// # Growing the contract
//
// A [Request] names an agent, a user, an action, a [Resource] (type and
// id) and a [Context]. Another protocol adds its resource types and action
// groups (as A2A added RemoteAgent in [Upstream], with groups a2a_send and
// a2a_read; a model, Model in [Upstream], with group llm_complete),
// and runtime signals become Context fields (findings, learned lists):
// callers that do not use them do not change. Resources and their parents
// always come from the compiled configuration, never from the caller.
//
// # Deciding at scale
//
// Compile buckets the policies by action scope and, within that, by
// principal scope (`principal == Agent::"x"`, `principal in Team::"t"`, or
// any), so Decide and the partial evaluations evaluate only the policies
// whose scope can match and decision time does not grow with policies for
// other agents or tools. Compile also notes which context attributes each
// bucket's conditions read, and Decide remembers decisions in a bounded
// cache of the Engine (so a new version starts empty) keyed on the agent,
// the action and only those values — taken from the converted Cedar
// request, so arguments that fail conversion are refused before the cache
// is consulted. A request is not cached when an applicable policy reads
// context.time or the context in a way the analysis does not follow.
// [WithDecisionCache] sizes or disables the cache. Both give exactly the
// decision, determining policies and errors of evaluating every policy (a
// differential test checks it over random policies and requests).
//
// # Partial evaluation
//
// Listable, Permissible and WhoCan evaluate with cedar-go's batch
// evaluator: context.arguments and context.time are unknown, and so are
// sourceIp and protocol when the request does not carry them. A permit
// whose conditions depend on an unknown could hold; a forbid that depends
// on one might not apply. So a resource is listed unless no permit can
// apply or a forbid applies whatever the unknowns are. For remote agents
// the skill and the message sizes are unknown too, except that
// [Engine.PermittedSkills] sets the skill to each of the card's in turn:
// the skills an agent card shows a caller. tools/list shows
// what Listable returns; content access follows it per upstream; who-can
// asks Permissible of every enabled agent. The answers are advisory: every
// call is still decided with Decide.
package authz
