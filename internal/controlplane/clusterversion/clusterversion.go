// Package clusterversion is the control plane's table of cluster versions:
// which version of the replicated state machine introduced each command
// operation and each resource kind, and the rules that keep a rolling
// upgrade safe (the version gates of Consul and Nomad):
//
//   - Every control-plane binary supports the versions up to Current. A
//     node records that number in its Node resource when it starts; a node
//     whose binary predates cluster versions records nothing and counts as
//     Baseline.
//   - A command needs the highest version of anything in it (Needs). The
//     proposer stamps that into Command.cluster_version.
//   - A write is refused (Gate) until every voter recorded in the state
//     supports what it needs: before it is proposed, and again, from the
//     replicated state alone, when it is applied.
//   - A replica that meets a command it cannot apply in full (an operation
//     or resource kind it does not know, or a cluster_version above
//     Current) stops instead of skipping or refusing it, which would leave
//     it diverged from the replicas that applied it.
//
// Unknown fields elsewhere are not a reason to stop: proto3 lets an older
// binary ignore a field it does not know (Go keeps it, so it survives a
// store and a snapshot), and new fields in resources, snapshot headers and
// the like must be safe to ignore. A change an older replica must not
// ignore is a new version: a new operation or kind in the table below, or
// a Needs rule that asks for the new version when a command uses it.
package clusterversion

import (
	"fmt"
	"slices"
	"strings"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Version is a cluster version: a feature level of the replicated state
// machine. Versions only grow; a number, once released, keeps its meaning.
type Version uint32

// Baseline is the version of every operation and kind that existed before
// cluster versions were recorded, and of every node that records none.
const Baseline Version = 1

// ops is the version that introduced each Command.op, by field name.
var ops = map[protoreflect.Name]Version{
	"put":          Baseline,
	"delete":       Baseline,
	"bootstrap":    Baseline,
	"touch":        Baseline,
	"set_freeze":   Baseline,
	"append_audit": Baseline,
	"sign_in":      WebSignIn,
	// Policy rollouts.
	"rollout_change": PolicyRollouts,
	// The leader's audit consumers, the alert outbox and operators'
	// changes of learned lists.
	"consume_audit":  AuditConsumers,
	"settle_alert":   AuditConsumers,
	"change_learned": AuditConsumers,
}

// kinds is the version that introduced each Resource.kind, by field name
// (which is also the kind's name in package resource and in Delete.kind).
// The test-only kind of the upgrade test is added by testKinds.
var kinds = map[protoreflect.Name]Version{
	"agent":           Baseline,
	"upstream":        Baseline,
	"tool_pin":        Baseline,
	"policy_set":      Baseline,
	"identity_source": Baseline,
	"secret":          Baseline,
	"admin_token":     Baseline,
	"node":            Baseline,
	"value_list":      Baseline,
	// Policy history, stored test cases, rollouts.
	"policy_history": PolicyRollouts,
	"policy_tests":   PolicyRollouts,
	"rollout":        PolicyRollouts,
	"setting":        Settings,
	"list_learning":  AuditConsumers,
	"alert_rule":     AuditConsumers,
	"alert":          AuditConsumers,
	"audit_cursor":   AuditConsumers,
	"model_price":    LLMBrokering,
	"budget":         LLMBrokering,
	"rate_limit":     RateLimits,
	"budget_usage":   FleetBudgets,
	// Runtime inspection.
	"inspection_rule": RuntimeInspection,
}

// Versions of behaviour of the state machine that is not an operation or
// a kind but changes what replicas compute, turned on only once every
// voter supports it (see Supports).
const (
	// TypedAdminAudit: the audit record of an admin write is an
	// EVENT_KIND_ADMIN_WRITE record with its AdminWrite detail, instead of
	// the call fields it was squeezed into before.
	TypedAdminAudit Version = 2
	// PolicyRollouts: policy sets keep their history (every change of a
	// set's source records a version), and the kinds and the operation of
	// staged rollouts exist.
	PolicyRollouts Version = 2
	// AuditConsumers: the leader's audit consumers with their cursors,
	// learned lists, alert rules and the alert outbox (operations and
	// kinds in the tables above). The leader starts its consumers only
	// once every voter supports it.
	AuditConsumers Version = 2
	// A2ABrokering: A2A upstreams have their agent card pinned (a ToolPin
	// of kind PIN_KIND_AGENT_CARD, which a put needs this version for: an
	// older replica would take it for a tool), and the Cedar schema
	// policies are validated against declares RemoteAgent and the a2a_send
	// and a2a_read groups once every voter supports it (an older replica
	// would refuse a policy naming them).
	A2ABrokering Version = 2
	// LLMBrokering: model prices and budgets are kinds, and the Cedar
	// schema policies are validated against declares Model and the
	// llm_complete group once every voter supports it (an older replica
	// would refuse a policy naming them), as do the stateful rules about
	// LLM upstreams' model names (see state).
	LLMBrokering Version = 2
)

// RuntimeInspection introduced the inspection_rule kind and the Cedar
// context attribute findings: a policy set whose source mentions findings
// needs it (see Needs), because a replica without it validates such a
// set against a schema without context.findings and refuses it.
const RuntimeInspection Version = 2

// Versions that introduced an operation or a kind.
const (
	// WebSignIn: the SignIn operation, which records a sign-in to the web
	// view in the admin log and the control plane's audit chain.
	WebSignIn Version = 3
	// Settings: the resource kind "setting" (config.v1.Setting), the
	// cluster-wide settings such as mcp.allowed-origins.
	Settings Version = 4
	// RateLimits: the resource kind "rate_limit" (config.v1.RateLimit),
	// fleet-wide rate and concurrency limits enforced with leases.
	// (Version 5 is tool versions'.)
	RateLimits Version = 6
	// FleetBudgets: the resource kind "budget_usage" (config.v1.BudgetUsage),
	// budgets' durable usage derived from the audit store, and
	// ConsumeAudit.budget_usage, which an older replica would ignore (see
	// Needs). Data planes lease slices of budgets once it is active. A
	// budget that sets its mode (Budget.mode: shadow) needs it too.
	FleetBudgets Version = 7
)

// ToolVersions: tool pins carry assignments of versions to teams and
// agents and deprecations with sunsets (ToolPin.assignments,
// ToolVersion.deprecate_time, sunset_time, deprecation_message). An older
// replica would ignore them: it would type the tool's Cedar arguments
// from the default version alone (and so judge later policy writes
// differently) and leave their rules unchecked. A pin put that uses them
// needs this version.
const ToolVersions Version = 5

// AuditSegments: a Raft snapshot carries the audit store as the list of
// its sealed segments with their hashes and the segment being appended to
// (auditstore.Manifest), and a node restoring it fetches the sealed
// segments it lacks from a peer (PeerService.FetchAuditSegment), instead of
// carrying every segment's bytes (auditstore.Snapshot). An older replica
// cannot restore such a snapshot, so a node writes it only once every
// voter supports this version. (Version 7 is budgets'.)
const AuditSegments Version = 8

// features are the behaviour versions above.
var features = []Version{TypedAdminAudit, PolicyRollouts, AuditConsumers, A2ABrokering, LLMBrokering, ToolVersions, AuditSegments}

// release is the highest version in the tables above: what a release
// binary supports.
var release = max(maxOf(ops, kinds), slices.Max(features))

// testOnly holds the kinds only a test build supports (nil in a release
// build; see testKinds).
var testOnly = testKinds()

// current is what this binary supports.
var current = max(release, maxOf(testOnly))

func maxOf(tables ...map[protoreflect.Name]Version) Version {
	m := Baseline
	for _, t := range tables {
		for _, v := range t {
			m = max(m, v)
		}
	}
	return m
}

// Current is the highest cluster version this binary supports.
func Current() Version { return current }

// Of reports the version of a node's record: 0 (nothing recorded) is
// Baseline.
func Of(recorded uint32) Version { return max(Version(recorded), Baseline) }

var (
	opField   = (&fsmv1.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("op")
	kindField = (&fsmv1.Resource{}).ProtoReflect().Descriptor().Oneofs().ByName("kind")
)

// KindVersion returns the version that introduced the resource kind named
// name, and false when this binary does not support the kind.
func KindVersion(name string) (Version, bool) {
	return kindVersion(protoreflect.Name(name))
}

func kindVersion(name protoreflect.Name) (Version, bool) {
	if v, ok := kinds[name]; ok {
		return v, true
	}
	v, ok := testOnly[name]
	return v, ok
}

// Need is what a command needs: a version, and the thing that needs it
// (for errors: "operation put", "kind upgrade_probe").
type Need struct {
	Version Version
	What    string
}

// UnsupportedError says that this binary cannot apply a command: it uses
// an operation or a resource kind this binary does not know, or it needs a
// higher cluster version than this binary supports. In the log this means
// the entry was proposed by a newer version, and the replica must stop;
// before proposing, that this node needs a newer binary. Its message is
// safe to show to clients.
type UnsupportedError struct {
	// What is what this binary does not support.
	What string
	// Need is the version the command asks for, when it says (0 when the
	// thing is simply unknown).
	Need Version
}

func (e *UnsupportedError) Error() string {
	s := fmt.Sprintf("%s is not supported by this control-plane binary, which supports cluster versions up to %d", e.What, current)
	if e.Need > 0 {
		s += fmt.Sprintf(" (the command needs cluster version %d)", e.Need)
	}
	return s
}

// Needs returns what cmd needs: the highest of the version that introduced
// its operation, that of the resource kind it puts or deletes, and the
// version cmd itself carries. It returns an *UnsupportedError when this
// binary cannot apply cmd (see UnsupportedError).
//
// An unset oneof (no operation, a Put of a resource with no kind) is an
// unknown operation or kind when the message carries fields this binary
// does not know: that is how an operation or kind added by a newer version
// decodes here. Without unknown fields it is merely empty, and the state
// machine refuses it as bad input, as it always has. A Delete of a kind
// name this binary does not know is bad input too (the state machine
// refuses it): a newer proposer stamps a Delete of a newer kind with that
// kind's version, which catches it here.
func Needs(cmd *fsmv1.Command) (Need, error) {
	m := cmd.ProtoReflect()
	need := Need{Version: Baseline, What: "the command"}
	op := m.WhichOneof(opField)
	if op == nil {
		if unknown := fieldNumbers(m.GetUnknown()); len(unknown) > 0 {
			return need, &UnsupportedError{What: "an operation this binary does not know (field " + unknown + ")", Need: Version(cmd.GetClusterVersion())}
		}
		return need, &UnsupportedError{What: "a command with no operation"}
	}
	v, ok := ops[op.Name()]
	if !ok {
		return need, &UnsupportedError{What: "operation " + string(op.Name()), Need: Version(cmd.GetClusterVersion())}
	}
	need = Need{Version: v, What: "operation " + string(op.Name())}
	switch o := cmd.GetOp().(type) {
	case *fsmv1.Command_Put:
		if r := o.Put.GetResource(); r != nil {
			kn, ue := kindNeed(r)
			if ue != nil {
				ue.Need = Version(cmd.GetClusterVersion())
				return need, ue
			}
			need = higher(need, kn)
			// A rollback is checked against the set's history, which an
			// older replica does not keep.
			if r.GetPolicySet().GetRestores() != 0 {
				need = higher(need, Need{Version: PolicyRollouts, What: "a policy set rollback"})
			}
			if r.GetToolPin().GetKind() == configv1.PinKind_PIN_KIND_AGENT_CARD {
				need = higher(need, Need{Version: A2ABrokering, What: "an agent-card pin"})
			}
			if usesToolVersions(r.GetToolPin()) {
				need = higher(need, Need{Version: ToolVersions, What: "tool version assignments and deprecations"})
			}
			// An older replica would store the mode without checking it,
			// and its data planes would enforce the budget.
			if r.GetBudget().GetMode() != configv1.BudgetMode_BUDGET_MODE_UNSPECIFIED {
				need = higher(need, Need{Version: FleetBudgets, What: "a budget mode (enforce or shadow)"})
			}
			if readsFindings(r) {
				need = higher(need, Need{Version: RuntimeInspection, What: "a policy set that mentions findings (context.findings)"})
			}
		}
	case *fsmv1.Command_ConsumeAudit:
		if len(o.ConsumeAudit.GetBudgetUsage()) > 0 {
			need = higher(need, Need{Version: FleetBudgets, What: "budget usage"})
		}
	case *fsmv1.Command_Delete:
		if kv, ok := KindVersion(o.Delete.GetKind()); ok {
			need = higher(need, Need{Version: kv, What: "kind " + o.Delete.GetKind()})
		}
	case *fsmv1.Command_Bootstrap:
		// Its node and token are kinds of the baseline.
	}
	if c := Version(cmd.GetClusterVersion()); c > need.Version {
		need = Need{Version: c, What: need.What}
	}
	if need.Version > current {
		return need, &UnsupportedError{What: need.What + " at cluster version " + fmt.Sprint(need.Version), Need: need.Version}
	}
	return need, nil
}

// ResourceNeed returns what storing r needs, or an *UnsupportedError when
// this binary does not support r's kind. A resource with no kind and no
// unknown fields needs Baseline (it is merely empty).
func ResourceNeed(r *fsmv1.Resource) (Need, error) {
	n, ue := kindNeed(r)
	if ue != nil {
		return n, ue
	}
	return n, nil
}

func kindNeed(r *fsmv1.Resource) (Need, *UnsupportedError) {
	m := r.ProtoReflect()
	k := m.WhichOneof(kindField)
	if k == nil {
		if unknown := fieldNumbers(m.GetUnknown()); len(unknown) > 0 {
			return Need{}, &UnsupportedError{What: "a resource kind this binary does not know (field " + unknown + ")"}
		}
		return Need{Version: Baseline, What: "an empty resource"}, nil
	}
	v, ok := kindVersion(k.Name())
	if !ok {
		return Need{}, &UnsupportedError{What: "resource kind " + string(k.Name())}
	}
	return Need{Version: v, What: "kind " + string(k.Name())}, nil
}

// readsFindings reports whether r is a policy set whose source mentions
// "findings" anywhere (comments and strings included): the one test that
// needs no Cedar parser, and never misses a policy that reads
// context.findings.
func readsFindings(r *fsmv1.Resource) bool {
	return strings.Contains(r.GetPolicySet().GetSource(), "findings")
}

func higher(a, b Need) Need {
	if b.Version > a.Version {
		return b
	}
	return a
}

// UnknownFields lists the numbers of the fields of m this binary does not
// know ("16, 17"), or "" when there are none. It looks at m itself, not at
// the messages inside it.
func UnknownFields(m protoreflect.Message) string { return fieldNumbers(m.GetUnknown()) }

// fieldNumbers lists the field numbers in raw unknown-field bytes ("16,
// 17"), or "" when there are none. Malformed bytes count as one unknown
// field "?".
func fieldNumbers(raw protoreflect.RawFields) string {
	var nums []string
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return strings.Join(append(nums, "?"), ", ")
		}
		m := protowire.ConsumeFieldValue(num, typ, raw[n:])
		if m < 0 {
			return strings.Join(append(nums, "?"), ", ")
		}
		raw = raw[n+m:]
		if s := fmt.Sprint(num); !slices.Contains(nums, s) {
			nums = append(nums, s)
		}
	}
	return strings.Join(nums, ", ")
}

// Voter is a voting member as the state records it: its id and the highest
// version its binary supports.
type Voter struct {
	ID      string
	Version Version
}

// GateError refuses a write that needs a version some voters do not
// support yet. Its message is safe to show to clients.
type GateError struct {
	Need Need
	// Behind are the voters whose binaries support less, sorted by id.
	Behind []Voter
}

func (e *GateError) Error() string {
	parts := make([]string, len(e.Behind))
	for i, v := range e.Behind {
		parts[i] = fmt.Sprintf("%s (supports %d)", v.ID, v.Version)
	}
	return fmt.Sprintf("%s needs cluster version %d, which not every voter supports yet: %s; upgrade those nodes (one at a time) to a release that supports version %d, then retry",
		e.Need.What, e.Need.Version, strings.Join(parts, ", "), e.Need.Version)
}

// Gate returns a *GateError when some voter supports less than need, and
// nil otherwise. It reads only its arguments, so replicas that give it the
// same replicated voters decide the same.
func Gate(need Need, voters []Voter) error {
	if need.Version <= Baseline {
		return nil
	}
	var behind []Voter
	for _, v := range voters {
		if v.Version < need.Version {
			behind = append(behind, v)
		}
	}
	if len(behind) == 0 {
		return nil
	}
	slices.SortFunc(behind, func(a, b Voter) int { return strings.Compare(a.ID, b.ID) })
	return &GateError{Need: need, Behind: behind}
}

// Effective is the version every voter supports (the lowest of theirs),
// Baseline when there are none.
func Effective(voters []Voter) Version {
	if len(voters) == 0 {
		return Baseline
	}
	m := voters[0].Version
	for _, v := range voters[1:] {
		m = min(m, v.Version)
	}
	return max(m, Baseline)
}

// Supports reports whether every voter supports version v: the rule for
// turning on a behaviour version, decided from the replicated voters alone
// so that every replica decides the same.
func Supports(voters []Voter, v Version) bool {
	for _, w := range voters {
		if w.Version < v {
			return false
		}
	}
	return len(voters) > 0
}

// Release is the highest cluster version a release build supports (a test
// build supports one more: see testKinds).
func Release() Version { return release }

// usesToolVersions reports whether a pin carries what ToolVersions
// introduced.
func usesToolVersions(p *configv1.ToolPin) bool {
	if len(p.GetAssignments()) > 0 {
		return true
	}
	for _, v := range p.GetVersions() {
		if v.GetDeprecateTime() != nil || v.GetSunsetTime() != nil || v.GetDeprecationMessage() != "" {
			return true
		}
	}
	return false
}
