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

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Config is the view of the active configuration a call needs. The data
// plane's compiled snapshot implements it; one call sees one version from
// start to finish.
type Config interface {
	// Version is the snapshot version.
	Version() uint64
	// AgentByAPIKey finds the agent holding an API key (constant-time hash
	// comparison inside). ok is false for an unknown, expired or malformed
	// key.
	AgentByAPIKey(key string, now time.Time) (agent *configv1.Agent, ok bool)
	// Tool finds a pinned tool by its action name ("<prefix>__<tool>").
	Tool(action string) (Tool, bool)
	// Tools lists every servable tool in action-name order.
	Tools() []Tool
	// Authorize decides a call. It must be safe for concurrent use.
	Authorize(ctx context.Context, c *Call) Decision
	// Frozen reports the emergency brake and its reason.
	Frozen() (bool, string)
}

// TokenAuthenticator is implemented by a Config that trusts JWT identity
// sources. Stages and adapters find it with a type assertion; a Config that
// does not implement it accepts no JWT. Implementations must be safe for
// concurrent use. A returned error's message is safe to show to the caller.
type TokenAuthenticator interface {
	// AgentByJWT verifies a token from an issuer trusted for agents and
	// returns the enabled agent bound to its subject (Agent.jwt_subjects).
	AgentByJWT(ctx context.Context, token string, now time.Time) (*configv1.Agent, error)
	// UserByJWT verifies an on-behalf-of user token from an issuer trusted
	// for users.
	UserByJWT(ctx context.Context, token string, now time.Time) (*User, error)
}

// CertAuthenticator is implemented by a Config that trusts client
// certificates (mTLS). Stages and adapters find it with a type assertion; a
// Config that does not implement it accepts no certificate. Implementations
// must be safe for concurrent use. A returned error's message is safe to
// show to the caller.
type CertAuthenticator interface {
	// AgentByCert verifies chain (leaf first, as the TLS handshake
	// presented it, unverified) against the configuration's trust anchors
	// for client authentication at now, and returns the one enabled agent
	// the leaf is registered to (Agent.spiffe_ids or
	// Agent.cert_fingerprints).
	AgentByCert(chain []*x509.Certificate, now time.Time) (*configv1.Agent, error)
}

// ToolLister is implemented by a Config that can tell which tools a caller
// could be permitted to call at all. Adapters find it with a type
// assertion; a Config that does not implement it lists every servable tool.
// Implementations must be safe for concurrent use.
type ToolLister interface {
	// Listable returns, in action-name order, the servable tools some call
	// by c.Agent (on behalf of c.User, when set) could be permitted to
	// make, whatever its arguments. c.Action and c.Arguments are ignored.
	// It returns none when c.Agent is nil or not an enabled agent.
	Listable(ctx context.Context, c *Call) []Tool
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

// Tool is a pinned tool as the data plane serves it.
type Tool struct {
	Action   string
	Upstream string
	Name     string
	Class    configv1.ToolClass
	Version  int64
	// Definition is the approved tool definition (JSON).
	Definition json.RawMessage
	// DefinitionHash is the pinned version's toolpin hash of Definition
	// ("sha256:<hex>"), which drift detection compares with the
	// upstream's live definition.
	DefinitionHash string
	// ValidateArguments checks arguments against the pinned input schema.
	ValidateArguments func(args any) error
}

// ReadOnly reports whether the operator classified the tool read-only.
func (t Tool) ReadOnly() bool { return t.Class == configv1.ToolClass_TOOL_CLASS_READ_ONLY }

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
}

// Call is one protocol-neutral call flowing through the pipeline. Adapters
// fill the request part; stages fill the rest.
type Call struct {
	// Request, set by the protocol adapter.
	Protocol   string // "mcp"
	Method     string // protocol method, e.g. "tools/call"
	Action     string // tool action name the caller asked for
	Arguments  json.RawMessage
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

	// Set at entry: the configuration version and mode this call runs in.
	Config Config
	Mode   configsyncv1.Mode
	// Quarantine tells which pinned tools drifted upstream; nil when the
	// data plane does not detect drift.
	Quarantine Quarantine

	// Set by stages.
	Agent *configv1.Agent
	// User is set by Authenticate from a verified UserToken; nil without.
	User     *User
	Tool     Tool
	Decision Decision

	// decoded is Arguments decoded, recorded by SetDecodedArguments for
	// the arguments in decodedFrom.
	decoded     any
	decodedFrom json.RawMessage
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

// Result is what the terminal handler produced.
type Result struct {
	// Body is the upstream's result payload (protocol-specific bytes the
	// adapter knows how to return).
	Body json.RawMessage
	// IsError is set when the upstream reported a tool failure, or
	// answered a content call with an error.
	IsError bool
	// RPCError is the JSON-RPC error object the upstream answered a
	// content call (resources/read, prompts/get) with; Body is then empty.
	RPCError json.RawMessage
	// UpstreamLatency is the time spent upstream.
	UpstreamLatency time.Duration
}

// Handler processes a call.
type Handler func(ctx context.Context, c *Call) (*Result, error)

// Stage is one step of the pipeline. Implementations must be safe for
// concurrent use; Handle either refuses (returns a *Refusal error) or calls
// next.
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
