package clusterversion_test

import (
	"errors"
	"google.golang.org/protobuf/types/known/timestamppb"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// probe is the kind only a test build supports.
const probe = "upgrade_probe"

// TestEveryOperationAndKindHasAVersion: adding an operation or a resource
// kind to the proto without giving it a version in the table fails here,
// so no command reaches the log without a version gate.
func TestEveryOperationAndKindHasAVersion(t *testing.T) {
	ops := (&fsmv1.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("op").Fields()
	for i := range ops.Len() {
		name := ops.Get(i).Name()
		cmd := &fsmv1.Command{}
		m := cmd.ProtoReflect()
		m.Set(ops.Get(i), m.NewField(ops.Get(i)))
		need, err := clusterversion.Needs(cmd)
		if err != nil {
			t.Errorf("operation %s: %v", name, err)
			continue
		}
		if need.Version < clusterversion.Baseline || need.Version > clusterversion.Current() {
			t.Errorf("operation %s needs version %d, outside [1, %d]", name, need.Version, clusterversion.Current())
		}
	}
	kinds := (&fsmv1.Resource{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	for i := range kinds.Len() {
		name := string(kinds.Get(i).Name())
		v, ok := clusterversion.KindVersion(name)
		if name == probe && clusterversion.Current() == clusterversion.Release() {
			if ok {
				t.Errorf("a release build supports the test-only kind %s", probe)
			}
			continue
		}
		if !ok || v < clusterversion.Baseline || v > clusterversion.Current() {
			t.Errorf("kind %s: version %d, known %t; every kind needs a version in [1, %d]", name, v, ok, clusterversion.Current())
		}
	}
}

// withUnknown appends a field this binary does not know to a marshalled
// message: how an operation or kind of a newer version decodes here.
func withUnknown(t *testing.T, m proto.Message, num protowire.Number) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, []byte{0x0a, 0x02, 'h', 'i'})
}

func decodeCommand(t *testing.T, b []byte) *fsmv1.Command {
	t.Helper()
	c := &fsmv1.Command{}
	if err := proto.Unmarshal(b, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func put(r *fsmv1.Resource) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_Put{Put: &fsmv1.Put{Resource: r, Mode: fsmv1.WriteMode_WRITE_MODE_UPSERT}}}
}

func agent() *fsmv1.Resource {
	return &fsmv1.Resource{Kind: &fsmv1.Resource_Agent{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "a"}}}}
}

func budget(mode configv1.BudgetMode) *fsmv1.Resource {
	return &fsmv1.Resource{Kind: &fsmv1.Resource_Budget{Budget: &configv1.Budget{Meta: &configv1.ResourceMeta{Name: "b"}, Mode: mode}}}
}

func TestNeeds(t *testing.T) {
	// A Put of a resource whose kind is a field this binary does not know.
	newKind := &fsmv1.Resource{}
	if err := proto.Unmarshal(withUnknown(t, &fsmv1.Resource{}, 200), newKind); err != nil {
		t.Fatal(err)
	}
	// An agent carrying a field this binary does not know: harmless.
	agentBytes, _ := proto.Marshal(agent().GetAgent())
	agentBytes = protowire.AppendVarint(protowire.AppendTag(agentBytes, 900, protowire.VarintType), 7)
	newAgent := &configv1.Agent{}
	if err := proto.Unmarshal(agentBytes, newAgent); err != nil {
		t.Fatal(err)
	}
	over := clusterversion.Current() + 1
	stamped := put(agent())
	stamped.ClusterVersion = uint32(over)
	probeCmd := put(&fsmv1.Resource{Kind: &fsmv1.Resource_UpgradeProbe{UpgradeProbe: &fsmv1.UpgradeProbe{Meta: &configv1.ResourceMeta{Name: "p"}}}})
	type needCase struct {
		name        string
		cmd         *fsmv1.Command
		want        clusterversion.Version
		unsupported string // substring of the *UnsupportedError, "" for none
	}
	tests := []needCase{
		{name: "put of a baseline kind", cmd: put(agent()), want: clusterversion.Baseline},
		{name: "delete of a baseline kind", cmd: &fsmv1.Command{Op: &fsmv1.Command_Delete{Delete: &fsmv1.Delete{Kind: "agent", Name: "a"}}}, want: clusterversion.Baseline},
		{name: "delete of a kind nobody knows is bad input, not a newer version", cmd: &fsmv1.Command{Op: &fsmv1.Command_Delete{Delete: &fsmv1.Delete{Kind: "widget"}}}, want: clusterversion.Baseline},
		{name: "touch", cmd: &fsmv1.Command{Op: &fsmv1.Command_Touch{Touch: &fsmv1.Touch{}}}, want: clusterversion.Baseline},
		{name: "put of an empty resource is bad input", cmd: put(&fsmv1.Resource{}), want: clusterversion.Baseline},
		{name: "put with no resource is bad input", cmd: &fsmv1.Command{Op: &fsmv1.Command_Put{Put: &fsmv1.Put{}}}, want: clusterversion.Baseline},
		{name: "a known resource with a new field is harmless", cmd: put(&fsmv1.Resource{Kind: &fsmv1.Resource_Agent{Agent: newAgent}}), want: clusterversion.Baseline},
		{name: "a known operation with a new command field is harmless", cmd: decodeCommand(t, withUnknown(t, put(agent()), 60)), want: clusterversion.Baseline},
		{name: "an operation of a newer version", cmd: decodeCommand(t, withUnknown(t, &fsmv1.Command{RequestId: "r"}, 17)), unsupported: "an operation this binary does not know (field 17)"},
		{name: "a command with no operation", cmd: &fsmv1.Command{RequestId: "r"}, unsupported: "no operation"},
		{name: "a kind of a newer version", cmd: put(newKind), unsupported: "a resource kind this binary does not know (field 200)"},
		{name: "a command stamped above this binary", cmd: stamped, unsupported: "needs cluster version"},
		{name: "an inspection rule", cmd: put(&fsmv1.Resource{Kind: &fsmv1.Resource_InspectionRule{InspectionRule: &configv1.InspectionRule{Meta: &configv1.ResourceMeta{Name: "r"}}}}),
			want: clusterversion.RuntimeInspection},
		{name: "a delete of an inspection rule", cmd: &fsmv1.Command{Op: &fsmv1.Command_Delete{Delete: &fsmv1.Delete{Kind: "inspection_rule", Name: "r"}}}, want: clusterversion.RuntimeInspection},
		{name: "a policy set reading context.findings", cmd: put(policySet(`forbid(principal, action, resource) when { context.findings.contains("pii") };`)), want: clusterversion.RuntimeInspection},
		{name: "a policy set without findings", cmd: put(policySet(`permit(principal, action, resource);`)), want: clusterversion.Baseline},
		{name: "a pin without assignments or deprecations", cmd: put(toolPin(nil)), want: clusterversion.Baseline},
		{name: "a pin with an assignment", cmd: put(toolPin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 1, Team: "payments"}}
		})), want: clusterversion.ToolVersions},
		{name: "a pin with a deprecated version", cmd: put(toolPin(func(p *configv1.ToolPin) {
			p.Versions[0].DeprecateTime, p.Versions[0].SunsetTime = timestamppb.Now(), timestamppb.Now()
		})), want: clusterversion.ToolVersions},
		{name: "a pin with a deprecation message alone", cmd: put(toolPin(func(p *configv1.ToolPin) {
			p.Versions[0].DeprecationMessage = "x"
		})), want: clusterversion.ToolVersions},
		{name: "a tool pin", cmd: put(&fsmv1.Resource{Kind: &fsmv1.Resource_ToolPin{ToolPin: &configv1.ToolPin{Tool: "t"}}}), want: clusterversion.Baseline},
		{name: "a budget without a mode", cmd: put(budget(configv1.BudgetMode_BUDGET_MODE_UNSPECIFIED)), want: clusterversion.LLMBrokering},
		// An older replica would store a mode unchecked, and enforce it.
		{name: "a shadow budget", cmd: put(budget(configv1.BudgetMode_BUDGET_MODE_SHADOW)), want: clusterversion.FleetBudgets},
		{name: "an enforced budget that says so", cmd: put(budget(configv1.BudgetMode_BUDGET_MODE_ENFORCE)), want: clusterversion.FleetBudgets},
		// An older replica would take an agent card for a tool.
		{name: "an agent-card pin", cmd: put(&fsmv1.Resource{Kind: &fsmv1.Resource_ToolPin{ToolPin: &configv1.ToolPin{Tool: "agent-card", Kind: configv1.PinKind_PIN_KIND_AGENT_CARD}}}), want: clusterversion.A2ABrokering},
	}
	if clusterversion.Current() == clusterversion.Release() {
		tests = append(tests, needCase{name: "the test-only kind in a release build", cmd: probeCmd, unsupported: "resource kind upgrade_probe"})
	} else {
		tests = append(tests, needCase{name: "the test-only kind in a test build", cmd: probeCmd, want: clusterversion.Current()})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			need, err := clusterversion.Needs(tt.cmd)
			if tt.unsupported != "" {
				var ue *clusterversion.UnsupportedError
				if !errors.As(err, &ue) {
					t.Fatalf("Needs = %+v, %v; want an *UnsupportedError", need, err)
				}
				for _, want := range []string{tt.unsupported, "not supported by this control-plane binary, which supports cluster versions up to"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Needs: %v", err)
			}
			if need.Version != tt.want {
				t.Errorf("Needs = %+v, want version %d", need, tt.want)
			}
		})
	}
}

func policySet(src string) *fsmv1.Resource {
	return &fsmv1.Resource{Kind: &fsmv1.Resource_PolicySet{PolicySet: &configv1.PolicySet{Meta: &configv1.ResourceMeta{Name: "p"}, Source: src}}}
}

func TestGate(t *testing.T) {
	need := clusterversion.Need{Version: 3, What: "kind widget"}
	tests := []struct {
		name   string
		need   clusterversion.Need
		voters []clusterversion.Voter
		behind string // "" when the gate is open
	}{
		{name: "baseline needs nothing", need: clusterversion.Need{Version: 1, What: "operation put"}, voters: []clusterversion.Voter{{"n1", 1}}},
		{name: "every voter supports it", need: need, voters: []clusterversion.Voter{{"n1", 3}, {"n2", 4}, {"n3", 3}}},
		{name: "no voters recorded", need: need},
		{name: "two voters behind, named in id order", need: need, voters: []clusterversion.Voter{{"n3", 1}, {"n1", 3}, {"n2", 2}},
			behind: "n2 (supports 2), n3 (supports 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := clusterversion.Gate(tt.need, tt.voters)
			if tt.behind == "" {
				if err != nil {
					t.Fatalf("Gate: %v", err)
				}
				return
			}
			var ge *clusterversion.GateError
			if !errors.As(err, &ge) {
				t.Fatalf("Gate = %v, want a *GateError", err)
			}
			for _, want := range []string{"kind widget needs cluster version 3", tt.behind, "upgrade those nodes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestEffective(t *testing.T) {
	tests := []struct {
		name   string
		voters []clusterversion.Voter
		want   clusterversion.Version
	}{
		{"none", nil, clusterversion.Baseline},
		{"the lowest voter", []clusterversion.Voter{{"a", 3}, {"b", 2}, {"c", 4}}, 2},
		{"all the same", []clusterversion.Voter{{"a", 2}, {"b", 2}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clusterversion.Effective(tt.voters); got != tt.want {
				t.Errorf("Effective = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestOfTreatsNothingRecordedAsBaseline(t *testing.T) {
	if clusterversion.Of(0) != clusterversion.Baseline || clusterversion.Of(5) != 5 {
		t.Errorf("Of(0) = %d, Of(5) = %d", clusterversion.Of(0), clusterversion.Of(5))
	}
}

// toolPin is a tool pin put, edited by edit (when not nil).
func toolPin(edit func(*configv1.ToolPin)) *fsmv1.Resource {
	p := &configv1.ToolPin{Meta: &configv1.ResourceMeta{Name: "demo/t"}, Upstream: "demo", Tool: "t",
		Versions: []*configv1.ToolVersion{{Version: 1, Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY}}}
	if edit != nil {
		edit(p)
	}
	return &fsmv1.Resource{Kind: &fsmv1.Resource_ToolPin{ToolPin: p}}
}
