// Package limits bounds everything an operator or an agent controls in the
// gateway's configuration: sizes of strings and bytes, counts of repeated
// fields, and the nesting of Cedar source and JSON documents. Both planes
// enforce the same table before any parser runs: the control plane's admin
// API before it proposes a write, its state machine again before it applies
// one (a committed entry is replayed on every restart, so the state machine
// must refuse what the admin API would have refused), and a data plane
// before it compiles a snapshot. The nesting checks are scanners that never
// recurse and allocate nothing per byte, so a hostile document costs one
// linear pass however it is shaped.
//
// README.md's "Limits" section documents this table; change both together.
package limits

// Cedar policy sets.
const (
	// PolicySetSource bounds the bytes of one policy set's source.
	PolicySetSource = 1 << 20
	// PoliciesPerSet bounds the policies of one set.
	PoliciesPerSet = 20_000
	// CedarNesting bounds how deeply brackets — ( [ { — nest in a policy.
	CedarNesting = 64
	// CedarDepth bounds the depth of a policy's expression tree, as
	// CheckCedar estimates it from above without parsing: brackets, plus
	// operators, plus when/unless clauses (see CheckCedar). Cedar's parser,
	// validator and evaluator recurse over that tree.
	CedarDepth = 1024
	// PolicyFilename bounds a policy set's file name.
	PolicyFilename = 255
)

// Policy history, stored test cases and rollouts.
const (
	// PolicyMessage bounds the message of a policy version or a rollout,
	// and the reason of a rollout's change.
	PolicyMessage = 1024
	// PolicyHistoryDefault is how many versions a set's history keeps
	// unless the set says otherwise; PolicyHistoryMax the most it may say.
	PolicyHistoryDefault = 20
	PolicyHistoryMax     = 100
	// PolicyHistoryBytes bounds the sources a set's history keeps in all
	// (the oldest versions beyond it are dropped), so that one history
	// stays well below a state snapshot record's 16 MiB.
	PolicyHistoryBytes = 8 << 20
	// PolicyTestCases bounds the test cases stored with a policy set.
	PolicyTestCases = 1000
	// PolicyTestArguments bounds one test case's arguments (JSON), and
	// PolicyTestsArguments all the cases' arguments together.
	PolicyTestArguments  = 64 << 10
	PolicyTestsArguments = 2 << 20
	// PolicyTestField bounds one test case's other text fields (name,
	// agent, user, email, tool, source address, protocol, a group, a
	// policy id).
	PolicyTestField = 256
	// PolicyTestList bounds a test case's groups and its policy ids.
	PolicyTestList = 64
	// CanarySteps bounds a rollout's canary steps.
	CanarySteps = 10
	// RolloutGates bounds a rollout's gates; RolloutGate one gate's text.
	RolloutGates = 16
	RolloutGate  = 128
	// RolloutTransitions is how many changes of stage a rollout keeps.
	RolloutTransitions = 64
	// Rollouts is how many rollouts the control plane keeps; starting
	// another drops the oldest that is over.
	Rollouts = 50
	// RolloutDuration bounds a rollout's shadow stage and canary step.
	RolloutDuration = 30 * 24 * 3600 // seconds
)

// JSON documents: tool definitions, input schemas, inline JWKS.
const (
	// JSONNesting bounds how deeply objects and arrays nest in any JSON
	// document of the configuration.
	JSONNesting = 64
	// ToolDefinition bounds a tool version's definition and, separately,
	// its input schema.
	ToolDefinition = 256 << 10
	// ToolVersions bounds the versions a pin keeps.
	ToolVersions = 10
	// ToolAssignments bounds a pin's assignments of versions to teams and
	// agents.
	ToolAssignments = 256
	// DeprecationMessage bounds what an operator tells the callers of a
	// deprecated tool version.
	DeprecationMessage = 1024
	// DefinitionHash bounds a tool version's definition hash.
	DefinitionHash = 128
	// JWKS bounds an identity source's inline JSON Web Key Set.
	JWKS = 64 << 10
)

// Metadata of every resource.
const (
	// Name bounds any resource name (tool pin names are
	// "<upstream>/<tool>"; other names are DNS labels of at most 63).
	Name = 256
	// Owner bounds meta.owner.
	Owner = 128
	// Description bounds meta.description.
	Description = 1024
	// Labels bounds meta.labels.
	Labels = 32
	// LabelValue bounds one label's value (keys are at most 63).
	LabelValue = 255
	// Actor bounds the token id recorded as a resource's creator, updater
	// or approver, and a command's actor.
	Actor = 128
)

// Agents.
const (
	// APIKeys bounds an agent's API keys (two are enough to rotate).
	APIKeys = 4
	// Identities bounds an agent's JWT subjects, SPIFFE ids and
	// certificate fingerprints together.
	Identities = 16
	// JWTSubject bounds one JWT subject.
	JWTSubject = 256
)

// Upstreams and identity sources.
const (
	// URL bounds every URL, a JWT issuer and an OAuth audience.
	URL = 2048
	// ClientID bounds an OAuth client id.
	ClientID = 256
	// Scopes bounds an OAuth credential's scopes.
	Scopes = 32
	// Scope bounds one OAuth scope.
	Scope = 256
	// Audiences bounds a JWT issuer's accepted audiences.
	Audiences = 16
	// Audience bounds one accepted audience.
	Audience = 256
	// Algorithms bounds a JWT issuer's allowed algorithms (ten exist).
	Algorithms = 10
	// Claim bounds a JWT issuer's claim names.
	Claim = 128
	// CAPEM bounds a PEM bundle of CA certificates.
	CAPEM = 64 << 10
	// Addr bounds a host:port address.
	Addr = 255
)

// Secrets and value lists.
const (
	// SecretValue bounds a secret's plaintext.
	SecretValue = 64 << 10
	// SecretSealed bounds a sealed secret: the plaintext plus the sealing
	// overhead.
	SecretSealed = SecretValue + 64
	// ListValues bounds the values of a value list.
	ListValues = 10_000
	// ListValue bounds one value of a value list.
	ListValue = 256
)

// Inspection rules.
const (
	// InspectionDetectors bounds a rule's detectors, and separately its
	// patterns.
	InspectionDetectors = 16
	// InspectionDetector bounds one detector name ("pii.payment_card").
	InspectionDetector = 64
	// InspectionPattern bounds one operator pattern (RE2 source).
	InspectionPattern = 1024
	// JSONPath bounds a row ceiling's JSON path.
	JSONPath = 256
)

// Cluster-wide settings (config.v1.Setting).
const (
	// SettingValues bounds the values of one setting.
	SettingValues = 256
	// SettingValue bounds one value of a setting (an origin, a URL).
	SettingValue = 2048
)

// Commands of the replicated log.
const (
	// RequestID bounds a command's request id: the admin API's 128
	// characters plus the "#<attempt>" of a read-modify-write.
	RequestID = 160
	// Method bounds the admin method a command records.
	Method = 128
	// FreezeReason bounds the reason of the emergency brake.
	FreezeReason = 1024
	// ClusterID bounds the cluster id and the key-encryption key's id.
	ClusterID = 128
)
