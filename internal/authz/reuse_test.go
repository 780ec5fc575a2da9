package authz_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// TestWithPrevious compiles changed versions of the fixture reusing the
// engine of the fixture — the changed snapshot shares the fixture's
// unchanged messages, as a data plane's decode does — and from scratch:
// both must refuse alike or decide, list and explain alike.
func TestWithPrevious(t *testing.T) {
	// next is the fixture with its lists copied (so edits do not touch
	// the fixture) and its messages shared.
	next := func(base *snapshotv1.Snapshot) *snapshotv1.Snapshot {
		s := proto.CloneOf(base)
		s.Agents, s.Upstreams, s.ToolPins = slices.Clone(base.Agents), slices.Clone(base.Upstreams), slices.Clone(base.ToolPins)
		s.PolicySets, s.ValueLists = slices.Clone(base.PolicySets), slices.Clone(base.ValueLists)
		s.Version++
		return s
	}
	setSource := func(s *snapshotv1.Snapshot, src string) {
		ps := proto.CloneOf(s.PolicySets[0])
		ps.Source = src
		s.PolicySets[0] = ps
	}
	tests := []struct {
		name string
		edit func(s *snapshotv1.Snapshot)
	}{
		{"nothing", func(*snapshotv1.Snapshot) {}},
		{"one more policy", func(s *snapshotv1.Snapshot) {
			setSource(s, authztest.Policies+"\npermit(principal == Agent::\"marketer\", action == Action::\"pay__balance\", resource);\n")
		}},
		{"a policy changed in front of the others", func(s *snapshotv1.Snapshot) {
			setSource(s, "forbid(principal, action, resource) when { context.degraded };\n"+authztest.Policies)
		}},
		{"a policy refused", func(s *snapshotv1.Snapshot) {
			setSource(s, authztest.Policies+"\npermit(principal, action == Action::\"pay__nope\", resource);\n")
		}},
		{"one more agent", func(s *snapshotv1.Snapshot) {
			s.Agents = append(s.Agents, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "newcomer"}, Team: "payments"})
		}},
		{"an agent moved to another team", func(s *snapshotv1.Snapshot) {
			a := proto.CloneOf(s.Agents[1])
			a.Team = "payments"
			s.Agents[1] = a
		}},
		{"an agent disabled", func(s *snapshotv1.Snapshot) {
			a := proto.CloneOf(s.Agents[0])
			a.Disabled = true
			s.Agents[0] = a
		}},
		{"a new pin version with another schema", func(s *snapshotv1.Snapshot) {
			p := proto.CloneOf(s.ToolPins[1])
			p.Versions = append(p.Versions, &configv1.ToolVersion{Version: 3, InputSchema: []byte(`{"type":"object","properties":{"amount":{"type":"number"}}}`)})
			p.ActiveVersion = 3
			s.ToolPins[1] = p
		}},
		{"an agent and a policy", func(s *snapshotv1.Snapshot) {
			s.Agents = append(s.Agents, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "newcomer"}, Team: "marketing"})
			setSource(s, authztest.Policies+"\npermit(principal == Agent::\"newcomer\", action, resource);\n")
		}},
	}
	base := authztest.Snapshot()
	prev := authztest.Compile(t, base)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := next(base)
			tt.edit(s)
			want, werr := authz.Compile(s)
			got, gerr := authz.Compile(s, authz.WithPrevious(prev))
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Fatalf("from scratch: %v\nreusing: %v", werr, gerr)
			}
			if werr != nil {
				return
			}
			agents := []string{authztest.Payer, authztest.Marketer, authztest.Retired, "newcomer", "nobody"}
			for _, agent := range agents {
				if w, g := want.Listable(ctx, listRequest(agent), authz.ResourceTool), got.Listable(ctx, listRequest(agent), authz.ResourceTool); !slices.Equal(w, g) {
					t.Fatalf("%s lists %v, reusing %v", agent, w, g)
				}
				for _, action := range []string{authztest.PayAction, authztest.BalanceAction} {
					for _, args := range []string{`{}`, `{"amount": 100, "to": "bob"}`, `{"amount": 900, "to": "bob"}`, `{"amount": 1.5}`} {
						w, g := want.Decide(ctx, newRequest(agent, action, args)), got.Decide(ctx, newRequest(agent, action, args))
						if !reflect.DeepEqual(w, g) {
							t.Fatalf("%s %s %s: %+v, reusing %+v", agent, action, args, w, g)
						}
						we, werr := want.Explain(ctx, newRequest(agent, action, args))
						ge, gerr := got.Explain(ctx, newRequest(agent, action, args))
						if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(we, ge) {
							t.Fatalf("%s %s %s: explains %+v (%v), reusing %+v (%v)", agent, action, args, we, werr, ge, gerr)
						}
					}
				}
			}
		})
	}
}
