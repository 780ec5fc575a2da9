// Package pipeline is the data plane's request path, the same for every
// protocol: a protocol adapter turns a request into a protocol-neutral Call,
// a chain of Stages works on it (authenticate, gate by mode, authorize,
// validate, …), and a terminal Handler forwards it upstream. Stages never
// know which protocol they serve; adapters never decide policy.
package pipeline

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Config is the view of the active configuration a call needs. The data
// plane's compiled snapshot implements it; one call sees one version from
// start to finish. Every method must be safe for concurrent use; messages
// returned are shared and must not be modified. Errors' messages are safe
// to show to the caller.
type Config interface {
	// Version is the snapshot version.
	Version() uint64
	// AgentByAPIKey finds the agent holding an API key (constant-time hash
	// comparison inside). ok is false for an unknown, expired or malformed
	// key.
	AgentByAPIKey(key string, now time.Time) (agent *configv1.Agent, ok bool)
	// AgentByJWT verifies a token from an issuer trusted for agents and
	// returns the enabled agent bound to its subject (Agent.jwt_subjects).
	// A configuration without JWT issuers refuses every token.
	AgentByJWT(ctx context.Context, token string, now time.Time) (*configv1.Agent, error)
	// UserByJWT verifies an on-behalf-of user token from an issuer trusted
	// for users.
	UserByJWT(ctx context.Context, token string, now time.Time) (*User, error)
	// AgentByCert verifies chain (leaf first, as the TLS handshake
	// presented it, unverified) against the configuration's trust anchors
	// for client authentication at now, and returns the one enabled agent
	// the leaf is registered to (Agent.spiffe_ids or
	// Agent.cert_fingerprints).
	AgentByCert(chain []*x509.Certificate, now time.Time) (*configv1.Agent, error)

	// Tool finds a pinned tool by the name agents call it by
	// ("<prefix>__<tool>"), as it is served to agent: the version of the
	// pin the agent is assigned (its own assignment, else its team's),
	// else the default version; the default for a nil agent.
	Tool(name string, agent *configv1.Agent) (Tool, bool)
	// Agent finds a remote agent by the name agents call it by (its
	// upstream's name): its pinned agent card, Kind KindAgent.
	Agent(name string) (Tool, bool)
	// Upstreams lists the upstreams of a protocol, in name order.
	Upstreams(protocol string) []Upstream

	// Authorize decides an operation on one target (c.Op, c.Target).
	Authorize(ctx context.Context, c *Call) Decision
	// Listable returns, in name order, the targets of kind some call by
	// c.Agent (on behalf of c.User, when set) could be permitted to make,
	// whatever its arguments: for tools, the tools, each as Tool serves it
	// to c.Agent; for content kinds
	// (resources, prompts), one target per upstream whose content the
	// agent may use (Target.Name empty); for skills, those of the remote
	// agent c.Target.Upstream a message could be sent to, in card order,
	// after a target with an empty Name standing for the agent itself
	// when some operation on it could be permitted (none otherwise).
	// None when c.Agent is nil.
	Listable(ctx context.Context, c *Call, kind Kind) []Target

	// Frozen reports the emergency brake and its reason.
	Frozen() (bool, string)

	// Model finds a model by the name agents call it by
	// ("<prefix>/<id>" or an alias).
	Model(name string) (Model, bool)
	// Setting returns the values in force of a cluster-wide setting
	// (package setting, e.g. the browser origins an endpoint allows): the
	// stored ones or the default; nil for an unknown key.
	Setting(name string) []string

	// Inspection is the version's runtime inspection rules (nil: none).
	Inspection() *inspect.Ruleset
}

// Upstream is a registered upstream as calls see it.
type Upstream struct {
	Name string
	// Prefix namespaces the upstream's tools, resource URIs and prompt
	// names for agents: "<prefix>__<name>" ("" for an upstream registered
	// without one).
	Prefix string
}

// User is the end user a call is made on behalf of, as a verified user
// token names them.
type User struct {
	// Source is the IdentitySource that trusted the token.
	Source string
	// Issuer is the token's `iss`.
	Issuer string
	// Name is the value of the source's user claim.
	Name string
	// Email is "" when the token has none.
	Email string
	// Groups are sorted and deduplicated.
	Groups []string
}

// Tool is a pinned definition as the data plane serves it: one version of
// a tool's pin (the one a caller is served; see Config.Tool), or a remote
// agent's card (Kind KindAgent; Name is then the pin's own name and
// Action empty).
type Tool struct {
	// Kind is KindTool or KindAgent.
	Kind     Kind
	Action   string
	Upstream string
	Name     string
	Class    configv1.ToolClass
	Version  int64
	// Definition is the version's approved tool definition (JSON).
	Definition json.RawMessage
	// DefinitionHash is the version's toolpin hash of Definition
	// ("sha256:<hex>"), which drift detection compares with the
	// upstream's live definition.
	DefinitionHash string
	// Approved are the definition hashes of every version of the pin:
	// an upstream serving any of them has not drifted (shared, never
	// modified).
	Approved []string
	// Compatible are the definition hashes, among Approved, of the
	// versions this version's callers can be served by: its own, and
	// every other one its callers' inputs and expected outputs fit
	// (package toolcompat). An upstream serving another approved version
	// refuses them (ReasonToolVersionIncompatible). Shared, never
	// modified.
	Compatible []string
	// Deprecation is set when an operator deprecated this version.
	Deprecation *Deprecation
	// ValidateArguments checks arguments against the version's input
	// schema (nil for an agent card).
	ValidateArguments func(args any) error
}

// ReadOnly reports whether the operator classified the tool read-only.
func (t Tool) ReadOnly() bool { return t.Class == configv1.ToolClass_TOOL_CLASS_READ_ONLY }

// Deprecation is an operator's deprecation of a tool version: calls on it
// are served with a notice until Sunset, and refused from then on
// (ReasonToolVersionRetired), by the clock of the data plane that serves
// them.
type Deprecation struct {
	// Since is when the version was deprecated; Sunset when calls on it
	// stop being served.
	Since, Sunset time.Time
	// Message is what the operator tells callers ("" for nothing).
	Message string
	// Replacement is the version callers should move to, 0 when none.
	Replacement int64
}

// Retired reports whether the sunset has come at now.
func (d *Deprecation) Retired(now time.Time) bool { return d != nil && !now.Before(d.Sunset) }

// Decision is an authorization decision and the policies behind it.
type Decision struct {
	Allowed bool
	// Policies are the ids of the policies that determined the decision.
	Policies []string
	// Errors are policy evaluation errors (a policy that errors is skipped).
	Errors []string
	// InvalidArguments is set when the call was denied before any policy
	// ran because its arguments do not fit the tool's pinned schema (wrong
	// JSON types, values Cedar cannot hold, malformed JSON).
	InvalidArguments bool
	// Candidate is set when a policy rollout's candidate decided (the
	// agent is in its canary).
	Candidate bool
	// Versions are the versions of the policy sets whose policies
	// determined the decision, "<set>@<version>", sorted; shared, never
	// modified.
	Versions []string
}

// Operation says what a caller asks of a target. Stages decide by the
// operation and the target's kind, never by protocol or method.
type Operation string

// Operations.
const (
	// OpCall runs a target: a tool call, a message to a remote agent, a
	// model completion. It may change the world unless the target is
	// read-only.
	OpCall Operation = "call"
	// OpList lists the targets of one kind the caller may use; each
	// protocol lists in its own shape.
	OpList Operation = "list"
	// OpRead reads one content item (an MCP resource).
	OpRead Operation = "read"
	// OpGet gets one item by name (an MCP prompt, an A2A task).
	OpGet Operation = "get"
	// OpQuery finds the items a target holds for the caller (an A2A
	// agent's tasks in one of the caller's contexts).
	OpQuery Operation = "query"
	// OpCancel stops work a target is doing for the caller (an A2A task).
	// Like a call, it may change the world unless the target is
	// read-only.
	OpCancel Operation = "cancel"
	// OpComplete asks for argument completions of a prompt or resource
	// template.
	OpComplete Operation = "complete"
	// OpSubscribe and OpUnsubscribe follow or stop following updates of
	// one content item (or an A2A task).
	OpSubscribe   Operation = "subscribe"
	OpUnsubscribe Operation = "unsubscribe"
	// OpSession is a session or handshake request the gateway answers
	// itself: initialize, discover, ping, opening a notification stream,
	// ending a session, setting the log level.
	OpSession Operation = "session"
)

// ReadOnly reports whether the operation never changes the world by its
// nature (a call's or cancel's effect depends on its target).
func (o Operation) ReadOnly() bool { return o != OpCall && o != OpCancel }

// Kind is what a target is.
type Kind string

// Kinds of target.
const (
	KindTool     Kind = "tool"
	KindResource Kind = "resource"
	KindPrompt   Kind = "prompt"
	// KindAgent is a remote agent (A2A): messages are sent to it, and its
	// tasks are got, listed, cancelled and followed.
	KindAgent Kind = "agent"
	// KindSkill is a skill of a remote agent, listed in its card.
	KindSkill Kind = "skill"
	// KindModel is the target of the LLM protocols.
	KindModel Kind = "model"
)

// Target is what an operation is about.
type Target struct {
	Kind Kind
	// Name is the target as the caller named it, in the gateway's
	// namespace ("<prefix>__<name>" for tools, prompts and resource
	// URIs); "" for a list, or for a content target that stands for a
	// whole upstream.
	Name string
	// Upstream is the upstream that serves the target: routed by the
	// adapter for content, set by Gate from the pin for a tool.
	Upstream string
	// Own is the upstream's own name (or URI) for the target.
	Own string
	// Tool is the pinned tool, for Kind tool once Gate resolved it; the
	// agent's pinned card for Kind agent (and for listed skills).
	Tool Tool
	// Model is the model, for Kind model: routed by the adapter, which
	// then also sets Upstream and Own.
	Model Model
	// Item is the item of the target the operation names, as the caller
	// named it: an A2A task (get, cancel, subscribe), "" for none.
	Item string
}

// LimitNote is what rate limits said of a call.
type LimitNote struct {
	// Limits are the rate limits' names.
	Limits []string
	// Shadow is set when every one of them is in shadow mode (the call
	// was not refused for them).
	Shadow bool
}

// Message describes what a call sends a remote agent (or a model), for
// policy and audit: set by the adapter.
type Message struct {
	// Skill is the skill the caller asked for ("" for none).
	Skill string
	// Bytes and MetadataBytes are the sizes of the message's content and
	// of its metadata, as sent.
	Bytes, MetadataBytes int64
}

// Task describes the long-running task (A2A) an operation made, touched
// or listed, as the caller saw it, for the audit record.
type Task struct {
	// ID and ContextID are the task's and its context's ids as the caller
	// sees them; State its last state the gateway saw.
	ID, ContextID, State string
	// Events and EventBytes count what a stream relayed to the caller
	// before its result.
	Events     int
	EventBytes int64
	// Listed is how many tasks a query returned.
	Listed int
}

// Call is one protocol-neutral operation flowing through the pipeline.
// Adapters fill the request part; stages fill the rest.
type Call struct {
	// Request, set by the protocol adapter.
	Protocol string // "mcp"
	// Method is the protocol's own name for the request (e.g.
	// "tools/call"), for the audit record and logs; stages never read it.
	Method string
	Op     Operation
	Target Target
	// Arguments are the operation's arguments as the caller sent them:
	// a tool's arguments, or the params an upstream must see for other
	// operations.
	Arguments json.RawMessage
	// Message describes the message a call sends, nil when it sends none.
	Message    *Message
	Credential string // bearer credential the caller presented (never forwarded)
	// UserToken is the on-behalf-of user's JWT (header
	// Portcullis-User-Token), "" when none was sent. Never forwarded.
	UserToken string
	// PeerCertificates is the client certificate chain of the connection
	// (leaf first), as the TLS handshake presented it: unverified, since
	// the trust anchors are per configuration. Nil without TLS or without
	// a client certificate. Authenticate uses it only when Credential is
	// empty.
	PeerCertificates []*x509.Certificate
	SourceIP         netip.Addr
	// Hops are the data planes the request already passed through
	// (package hop), oldest first; forwarded upstream with this one's id.
	Hops  []string
	Start time.Time
	// Relay carries messages to and from the caller before the result;
	// nil when the caller cannot receive any.
	Relay *Relay
	// Trace is the W3C trace context the caller sent with the operation,
	// read by the data plane from the HTTP headers at Begin and by the
	// protocol adapter from its own carrier when it has one (MCP's
	// params._meta wins over the headers); the data plane's span for the
	// call continues that trace. Nil when the data plane does not trace:
	// then nobody reads a carrier.
	Trace *TraceContext
	// Payload is content the call carries that the audit record keeps
	// only by size and hash (a model call's prompt: the request body);
	// nil for calls whose Arguments say it all. It is the request side
	// an inspection stage reads.
	Payload []byte
	// Demand is the most the call may consume (tokens), for limits and
	// policy; zero for targets that count none.
	Demand Demand
	// Stream is set when the caller asked for the answer as a stream.
	Stream bool
	// Tools names the tools the request offers its target (the tool
	// definitions of a model call), for policy.
	Tools []string
	// Refused, when the adapter sets it, is the refusal of a request its
	// endpoint turned down on a transport rule before the operation was
	// read (a browser Origin the operator did not allow). The call still
	// runs through the stages so that the identified caller is recorded
	// (Audit); Gate then refuses it with this, and nothing after Gate
	// runs.
	Refused *Refusal
	// Content shows runtime inspection what the call's messages carry, in
	// the protocol's encoding; nil: each message is one JSON document.
	Content Content

	// Set at entry: the configuration version and mode this call runs in.
	Config Config
	Mode   configsyncv1.Mode
	// Quarantine tells which pinned tools drifted upstream; nil when the
	// data plane does not detect drift.
	Quarantine Quarantine
	// Rollout is the policy rollout Config stages, nil when none (set at
	// entry, from the same version as Config).
	Rollout Rollout

	// Set by stages.
	Agent *configv1.Agent
	// User is set by Authenticate from a verified UserToken; nil without.
	User     *User
	Decision Decision
	// Visible is, for OpList, what the caller may see: set by Authorize,
	// narrowed by the forwarder (an unhealthy upstream's targets drop
	// out). Each protocol renders it in its own shape.
	Visible []Target
	// RolloutNote is how the call fared in Rollout, set by the rollout
	// stage for the audit record; nil outside a rollout.
	RolloutNote *RolloutNote
	// Limited names the rate limits that refused the call, or that would
	// have in shadow mode, for the audit record; nil when none did.
	Limited *LimitNote
	// ShadowBudgets names the shadow budgets that would have refused the
	// call (it ran, and they counted it), for the audit record; set by
	// the Limit stage.
	ShadowBudgets []string
	// Findings are what runtime inspection found (at most MaxFindings;
	// FindingsOmitted counts the rest), set by Inspect once it returns.
	Findings        []Finding
	FindingsOmitted int
	// PolicyFindings are the names enforced request findings put in
	// Cedar's context.findings, set by Inspect before Authorize.
	PolicyFindings []string

	// decoded is Arguments decoded, recorded by SetDecodedArguments for
	// the arguments in decodedFrom.
	decoded     any
	decodedFrom json.RawMessage

	// timing holds what Timed's stages need per call (timing.go).
	timing [maxTimed]stageTiming
}

// SetDecodedArguments records v as c.Arguments decoded into Go values
// with numbers as json.Number (json.Decoder with UseNumber, absent or null
// as an empty map), so that later stages do not decode them again. v is
// shared: nobody may change it.
func (c *Call) SetDecodedArguments(v any) { c.decoded, c.decodedFrom = v, c.Arguments }

// DecodedArguments returns what SetDecodedArguments recorded, if it was
// for the call's current Arguments.
func (c *Call) DecodedArguments() (any, bool) {
	if c.decodedFrom == nil || len(c.decodedFrom) != len(c.Arguments) ||
		len(c.Arguments) > 0 && &c.decodedFrom[0] != &c.Arguments[0] {
		return nil, false
	}
	return c.decoded, true
}

// TraceContext is a caller's W3C trace context, unparsed: the values of
// traceparent and tracestate as sent ("" when absent). The tracer parses
// them; a malformed traceparent starts a new trace.
type TraceContext struct {
	Parent, State string
}

// Set keeps parent and state when parent is not empty (a carrier that
// names no trace changes nothing). Safe on a nil receiver.
func (t *TraceContext) Set(parent, state string) {
	if t != nil && parent != "" {
		t.Parent, t.State = parent, state
	}
}

// Result is what the terminal handler produced. Stages read only its
// sizes and flags; the bytes belong to the protocol that produced them.
type Result struct {
	// Body is the target's answer, in its protocol's own encoding (for
	// MCP, a JSON-RPC result object), which only that protocol's adapter
	// interprets.
	Body json.RawMessage
	// IsError is set when the target answered with a failure of its own:
	// a tool reporting an error, an upstream refusing a content read.
	IsError bool
	// Failure is the upstream's own protocol-level error, as its
	// forwarder captured it (for MCP, a JSON-RPC error object), relayed to
	// the caller by the same protocol's adapter; Body is then empty.
	Failure json.RawMessage
	// Items is, for OpList, how many items the caller was shown.
	Items int
	// Task describes the task the operation made or touched, when it has
	// one (A2A).
	Task *Task
	// UpstreamLatency is the time spent upstream.
	UpstreamLatency time.Duration
	// Usage is what the call consumed, for targets that report it (nil
	// otherwise).
	Usage *Usage
	// Content describes the target's answer by size and hash, for calls
	// whose Payload the record keeps the same way.
	Content *Digest
}

// Handler processes a call. A handler may return a Result together with
// an error: what the call consumed before it failed (a stream that broke
// after the caller got part of it), for the stages that count usage.
type Handler func(ctx context.Context, c *Call) (*Result, error)

// Stage is one step of the pipeline. Implementations must be safe for
// concurrent use; Handle either refuses (returns a *Refusal error) or calls
// next, with the Call it was given (Timed's stages find the rest of the
// chain in it).
type Stage interface {
	Name() string
	Handle(ctx context.Context, c *Call, next Handler) (*Result, error)
}

// Chain composes stages in order in front of terminal.
func Chain(terminal Handler, stages ...Stage) Handler {
	h := terminal
	for i := len(stages) - 1; i >= 0; i-- {
		s, next := stages[i], h
		h = func(ctx context.Context, c *Call) (*Result, error) { return s.Handle(ctx, c, next) }
	}
	return h
}
