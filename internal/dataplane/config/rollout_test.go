package config_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/canary"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// candidatePolicies lets the payments team check balances only.
const candidatePolicies = `@id("balance-only")
permit(principal in Team::"payments", action == Action::"pay__balance", resource);
`

// rolloutID finds a rollout id whose 50% canary takes payer and leaves
// marketer out.
func rolloutID(t *testing.T) string {
	t.Helper()
	for i := range 1000 {
		id := fmt.Sprintf("payments-%d", i)
		if canary.In(id, authztest.Payer, 5000) && !canary.In(id, authztest.Marketer, 5000) {
			return id
		}
	}
	t.Fatal("no rollout id puts payer alone in the canary")
	return ""
}

func withRollout(id string, stage configv1.RolloutStage, bp uint32, source string) *snapshotv1.Snapshot {
	s := configtest.Snapshot()
	s.Rollout = &snapshotv1.Rollout{
		Id: id, Stage: stage, CanaryBasisPoints: bp,
		Candidate: &configv1.PolicySet{Meta: &configv1.ResourceMeta{Name: configtest.PolicySet}, Source: source, Filename: configtest.PolicyFile, Version: 2},
	}
	return s
}

func TestRolloutShadow(t *testing.T) {
	c := configtest.Compile(t, withRollout("r1", configv1.RolloutStage_ROLLOUT_STAGE_SHADOW, 0, candidatePolicies))
	ro := c.Rollout()
	if ro == nil || ro.ID() != "r1" || ro.Stage() != "shadow" || ro.CanaryBasisPoints() != 0 {
		t.Fatalf("Rollout() = %v", ro)
	}
	call := newCall(c, mustAgent(t, c, configtest.PayerKey), configtest.PayAction, `{"amount":100,"to":"acme"}`)
	d := c.Authorize(context.Background(), call)
	if !d.Allowed || d.Candidate || !slices.Equal(d.Versions, []string{"payments@1"}) {
		t.Fatalf("the active version decides in shadow: %+v", d)
	}
	other, ok := ro.Counterpart(context.Background(), call)
	if !ok || other.Allowed || !other.Candidate {
		t.Fatalf("Counterpart = %+v, %t; want the candidate's deny", other, ok)
	}
}

func TestRolloutCanary(t *testing.T) {
	id := rolloutID(t)
	c := configtest.Compile(t, withRollout(id, configv1.RolloutStage_ROLLOUT_STAGE_CANARY, 5000, candidatePolicies))
	ctx := context.Background()
	payer, marketer := mustAgent(t, c, configtest.PayerKey), mustAgent(t, c, configtest.MarketerKey)
	tests := []struct {
		name      string
		agent     *configv1.Agent
		action    string
		allowed   bool
		candidate bool
		versions  []string
		other     bool // a counterpart decision exists
	}{
		{name: "the candidate denies a canary agent's payment", agent: payer, action: configtest.PayAction, candidate: true, other: true},
		{name: "the candidate allows a canary agent's balance", agent: payer, action: configtest.BalanceAction, allowed: true, candidate: true, versions: []string{"payments@2"}, other: true},
		{name: "the active version decides outside the canary", agent: marketer, action: configtest.BalanceAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := newCall(c, tt.agent, tt.action, `{"amount":100,"to":"acme"}`)
			if tt.action == configtest.BalanceAction {
				call.Arguments = nil
			}
			d := c.Authorize(ctx, call)
			if d.Allowed != tt.allowed || d.Candidate != tt.candidate || !slices.Equal(d.Versions, tt.versions) {
				t.Fatalf("Authorize = %+v, want allowed %t, candidate %t, versions %v", d, tt.allowed, tt.candidate, tt.versions)
			}
			other, ok := c.Rollout().Counterpart(ctx, call)
			if ok != tt.other || ok && other.Candidate {
				t.Fatalf("Counterpart = %+v, %t; want the active version's: %t", other, ok, tt.other)
			}
		})
	}
	// Lists follow the engine that decides.
	var names []string
	for _, tg := range c.Listable(ctx, newCall(c, payer, "", ""), pipeline.KindTool) {
		names = append(names, tg.Name)
	}
	if !slices.Equal(names, []string{configtest.BalanceAction}) {
		t.Fatalf("a canary agent lists %v, want the candidate's [%s]", names, configtest.BalanceAction)
	}
}

func TestRolloutRefused(t *testing.T) {
	tests := []struct {
		name string
		snap *snapshotv1.Snapshot
		want string
	}{
		{name: "a candidate that does not validate", snap: withRollout("r1", configv1.RolloutStage_ROLLOUT_STAGE_SHADOW, 0, `permit(principal, action == Action::"pay__nope", resource);`),
			want: `rollout "r1": candidate: policy set "payments"`},
		{name: "a stage data planes do not serve", snap: withRollout("r1", configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE, 0, candidatePolicies), want: "not one a data plane serves"},
		{name: "a share over 100%", snap: withRollout("r1", configv1.RolloutStage_ROLLOUT_STAGE_CANARY, 10001, candidatePolicies), want: "over 10,000 basis points"},
		{name: "a candidate over a limit", snap: withRollout("r1", configv1.RolloutStage_ROLLOUT_STAGE_SHADOW, 0, strings.Repeat("(", 70)), want: "the candidate is over a limit"},
		{name: "no id", snap: withRollout("", configv1.RolloutStage_ROLLOUT_STAGE_SHADOW, 0, candidatePolicies), want: "no id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Compile(configtest.Marshal(t, tt.snap))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile = %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
}

func TestNoRollout(t *testing.T) {
	if ro := configtest.Compile(t, configtest.Snapshot()).Rollout(); ro != nil {
		t.Fatalf("Rollout() = %v without one", ro)
	}
}
