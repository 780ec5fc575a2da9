// Package resource knows the resource kinds of the control plane: their
// names, how to reach the metadata of any of them, which of them data planes
// consume, and the stateless validation rules of each. It holds no state.
package resource

import (
	"fmt"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// Kind names a resource kind. The values are stable: they appear in the
// replicated log, in snapshots and in the admin log.
type Kind string

// The resource kinds.
const (
	Agent          Kind = "agent"
	Upstream       Kind = "upstream"
	ToolPin        Kind = "tool_pin"
	PolicySet      Kind = "policy_set"
	IdentitySource Kind = "identity_source"
	Secret         Kind = "secret"
	AdminToken     Kind = "admin_token"
	Node           Kind = "node"
	ValueList      Kind = "value_list"
	// ModelPrice is a model's price table, "<upstream>/<model id>".
	ModelPrice Kind = "model_price"
	// Budget bounds what a key's calls consume per calendar window.
	Budget Kind = "budget"
	// RateLimit bounds how fast, and how many at once, a key's calls run
	// across the fleet; cluster version 6.
	RateLimit Kind = "rate_limit"
	// PolicyHistory is the kept versions of a policy set; the state
	// machine writes it, nothing else may.
	PolicyHistory Kind = "policy_history"
	// PolicyTests are the test cases stored with a policy set.
	PolicyTests Kind = "policy_tests"
	// Rollout is a staged rollout of a policy set's next version.
	Rollout Kind = "rollout"
	// Setting is a cluster-wide setting, named by its key (package
	// setting); cluster version 4.
	Setting Kind = "setting"
	// ListLearning is what a value list learns from calls (cluster
	// version 2).
	ListLearning Kind = "list_learning"
	// AlertRule says which events page whom (cluster version 2).
	AlertRule Kind = "alert_rule"
	// Alert is an alert in the outbox, queued by the audit consumer
	// (cluster version 2).
	Alert Kind = "alert"
	// AuditCursor is how far one of the leader's audit consumers has read
	// (cluster version 2).
	AuditCursor Kind = "audit_cursor"
	// BudgetUsage is what a budget's keys consumed in their current
	// windows, derived by the leader's budget audit consumer (cluster
	// version 7); named after its budget.
	BudgetUsage Kind = "budget_usage"
	// InspectionRule is a runtime inspection rule; cluster version 2.
	InspectionRule Kind = "inspection_rule"
	// UpgradeProbe is the synthetic kind of the rolling-upgrade test: only
	// binaries built with -tags upgradetest support it (package
	// clusterversion); every other binary refuses it like a kind from a
	// future version. It is not in Kinds (nothing lists or deletes it).
	UpgradeProbe Kind = "upgrade_probe"
)

// Kinds lists every kind of the gateway in a stable order.
var Kinds = []Kind{Agent, Upstream, ToolPin, PolicySet, IdentitySource, Secret, AdminToken, Node, ValueList, PolicyHistory, PolicyTests, Rollout, Setting,
	ListLearning, AlertRule, Alert, AuditCursor, ModelPrice, Budget, RateLimit, InspectionRule, BudgetUsage}

// Known reports whether k is a kind.
func Known(k Kind) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// DataplaneRelevant reports whether a change to a resource of kind k changes
// what data planes consume (and so moves the config version). A rollout
// is served only while in shadow or canary, and only its stage, share and
// candidate: the state machine moves the config version itself when
// those change, not on every change of a rollout (a pause, a finished
// rollout dropped).
func DataplaneRelevant(k Kind) bool {
	switch k {
	case Agent, Upstream, ToolPin, PolicySet, IdentitySource, Secret, ValueList, Setting, ListLearning, ModelPrice, Budget, RateLimit, InspectionRule:
		return true
	default:
		return false
	}
}

// KindOf returns the kind of r, or "" when r holds nothing.
func KindOf(r *fsmv1.Resource) Kind {
	switch r.GetKind().(type) {
	case *fsmv1.Resource_Agent:
		return Agent
	case *fsmv1.Resource_Upstream:
		return Upstream
	case *fsmv1.Resource_ToolPin:
		return ToolPin
	case *fsmv1.Resource_PolicySet:
		return PolicySet
	case *fsmv1.Resource_IdentitySource:
		return IdentitySource
	case *fsmv1.Resource_Secret:
		return Secret
	case *fsmv1.Resource_AdminToken:
		return AdminToken
	case *fsmv1.Resource_Node:
		return Node
	case *fsmv1.Resource_ValueList:
		return ValueList
	case *fsmv1.Resource_ModelPrice:
		return ModelPrice
	case *fsmv1.Resource_Budget:
		return Budget
	case *fsmv1.Resource_RateLimit:
		return RateLimit
	case *fsmv1.Resource_PolicyHistory:
		return PolicyHistory
	case *fsmv1.Resource_PolicyTests:
		return PolicyTests
	case *fsmv1.Resource_Rollout:
		return Rollout
	case *fsmv1.Resource_Setting:
		return Setting
	case *fsmv1.Resource_ListLearning:
		return ListLearning
	case *fsmv1.Resource_AlertRule:
		return AlertRule
	case *fsmv1.Resource_Alert:
		return Alert
	case *fsmv1.Resource_AuditCursor:
		return AuditCursor
	case *fsmv1.Resource_BudgetUsage:
		return BudgetUsage
	case *fsmv1.Resource_InspectionRule:
		return InspectionRule
	case *fsmv1.Resource_UpgradeProbe:
		return UpgradeProbe
	default:
		return ""
	}
}

// Message returns the resource message inside r.
func Message(r *fsmv1.Resource) proto.Message {
	switch k := r.GetKind().(type) {
	case *fsmv1.Resource_Agent:
		return k.Agent
	case *fsmv1.Resource_Upstream:
		return k.Upstream
	case *fsmv1.Resource_ToolPin:
		return k.ToolPin
	case *fsmv1.Resource_PolicySet:
		return k.PolicySet
	case *fsmv1.Resource_IdentitySource:
		return k.IdentitySource
	case *fsmv1.Resource_Secret:
		return k.Secret
	case *fsmv1.Resource_AdminToken:
		return k.AdminToken
	case *fsmv1.Resource_Node:
		return k.Node
	case *fsmv1.Resource_ValueList:
		return k.ValueList
	case *fsmv1.Resource_ModelPrice:
		return k.ModelPrice
	case *fsmv1.Resource_Budget:
		return k.Budget
	case *fsmv1.Resource_RateLimit:
		return k.RateLimit
	case *fsmv1.Resource_PolicyHistory:
		return k.PolicyHistory
	case *fsmv1.Resource_PolicyTests:
		return k.PolicyTests
	case *fsmv1.Resource_Rollout:
		return k.Rollout
	case *fsmv1.Resource_Setting:
		return k.Setting
	case *fsmv1.Resource_ListLearning:
		return k.ListLearning
	case *fsmv1.Resource_AlertRule:
		return k.AlertRule
	case *fsmv1.Resource_Alert:
		return k.Alert
	case *fsmv1.Resource_AuditCursor:
		return k.AuditCursor
	case *fsmv1.Resource_BudgetUsage:
		return k.BudgetUsage
	case *fsmv1.Resource_InspectionRule:
		return k.InspectionRule
	case *fsmv1.Resource_UpgradeProbe:
		return k.UpgradeProbe
	default:
		return nil
	}
}

// metaHolder is satisfied by every resource message.
type metaHolder interface {
	proto.Message
	GetMeta() *configv1.ResourceMeta
}

// Meta returns the metadata of the resource inside r (nil when absent).
func Meta(r *fsmv1.Resource) *configv1.ResourceMeta {
	if m, ok := Message(r).(metaHolder); ok {
		return m.GetMeta()
	}
	return nil
}

// Name returns the resource's name.
func Name(r *fsmv1.Resource) string { return Meta(r).GetName() }

// Wrap puts a resource message into a Resource. It panics on a message that
// is not a resource, which is a programming error.
func Wrap(m proto.Message) *fsmv1.Resource {
	switch v := m.(type) {
	case *configv1.Agent:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Agent{Agent: v}}
	case *configv1.Upstream:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Upstream{Upstream: v}}
	case *configv1.ToolPin:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_ToolPin{ToolPin: v}}
	case *configv1.PolicySet:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_PolicySet{PolicySet: v}}
	case *configv1.IdentitySource:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_IdentitySource{IdentitySource: v}}
	case *configv1.Secret:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Secret{Secret: v}}
	case *configv1.AdminToken:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_AdminToken{AdminToken: v}}
	case *configv1.Node:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Node{Node: v}}
	case *configv1.ValueList:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_ValueList{ValueList: v}}
	case *configv1.ModelPrice:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_ModelPrice{ModelPrice: v}}
	case *configv1.Budget:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Budget{Budget: v}}
	case *configv1.RateLimit:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_RateLimit{RateLimit: v}}
	case *configv1.PolicyHistory:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_PolicyHistory{PolicyHistory: v}}
	case *configv1.PolicyTests:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_PolicyTests{PolicyTests: v}}
	case *configv1.Rollout:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Rollout{Rollout: v}}
	case *configv1.Setting:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Setting{Setting: v}}
	case *configv1.ListLearning:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_ListLearning{ListLearning: v}}
	case *configv1.AlertRule:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_AlertRule{AlertRule: v}}
	case *configv1.Alert:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_Alert{Alert: v}}
	case *configv1.AuditCursor:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_AuditCursor{AuditCursor: v}}
	case *configv1.BudgetUsage:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_BudgetUsage{BudgetUsage: v}}
	case *configv1.InspectionRule:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_InspectionRule{InspectionRule: v}}
	case *fsmv1.UpgradeProbe:
		return &fsmv1.Resource{Kind: &fsmv1.Resource_UpgradeProbe{UpgradeProbe: v}}
	default:
		panic(fmt.Sprintf("resource: %T is not a resource", m))
	}
}

// ToolPinName is the resource name of the pin of tool on upstream.
func ToolPinName(upstream, tool string) string { return upstream + "/" + tool }

// EffectivePrefix is the tool-name prefix of an upstream: its explicit
// prefix when set (possibly empty), else its name.
func EffectivePrefix(u *configv1.Upstream) string {
	if u.ToolPrefix != nil {
		return u.GetToolPrefix()
	}
	return u.GetMeta().GetName()
}

// ActiveVersion returns the version of a pin that data planes serve: the
// one named by active_version, else the newest. Nil when the pin has none.
func ActiveVersion(p *configv1.ToolPin) *configv1.ToolVersion {
	var newest *configv1.ToolVersion
	for _, v := range p.GetVersions() {
		if p.GetActiveVersion() != 0 && v.GetVersion() == p.GetActiveVersion() {
			return v
		}
		if newest == nil || v.GetVersion() > newest.GetVersion() {
			newest = v
		}
	}
	return newest
}
