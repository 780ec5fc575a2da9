package state_test

import (
	"fmt"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/limits/limitstest"
	"google.golang.org/protobuf/proto"
)

// FuzzApplyDerived drives state.Apply with the commands of cluster
// version 2 — audit consumers' batches, alert delivery attempts, and
// operators' approvals — and the budget consumer's batches of cluster
// version 7, generated from the fuzz bytes, with names,
// scopes, values and counts at and beyond their limits, on a state with a
// learned list, an alert rule, cursors and an alert in the outbox. The
// same properties as FuzzApply hold: no panic, bounded allocation, the
// same result twice, nothing changed by a refusal, and a stored learning
// or alert that Validate accepts.
func FuzzApplyDerived(f *testing.F) {
	base := v2(f)
	base = statetest.Run(f, base, base.Index()+1, []statetest.Step{
		{Name: "learn cursor", Cmd: statetest.Consume("learn", 0, map[string]uint64{"dp1": 1})},
		{Name: "alert cursor", Cmd: statetest.Consume("alert", 0, nil)},
		{Name: "alert", Cmd: withAlerts(statetest.Consume("alert", 1, nil), statetest.Alert("a1", "sec", "dp1/1"))},
		{Name: "node at this binary's version", Cmd: statetest.Update(statetest.NodeAt("n1", clusterversion.Current()))},
		{Name: "other node at this binary's version", Cmd: statetest.Update(statetest.NodeAt("n2", clusterversion.Current()))},
		{Name: "budget", Cmd: statetest.Create(statetest.Budget("ops", 1_000_000))},
		{Name: "budget cursor", Cmd: statetest.Consume("budget", 0, nil)},
		{Name: "budget usage", Cmd: withBudgetUsage(statetest.Consume("budget", 1, nil), statetest.BudgetUsageDelta("ops", "team research", 2))},
	})
	for _, seed := range [][]byte{{}, {0, 1}, {0, 2}, {0, 3, 0, 0, 200}, {0, 1, 0, 0, 0, 0, 31, 0, 0, 146}, {0, 4}, {0, 4, 0, 2, 1, 9, 200, 3}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := limitstest.New(data)
		s := base
		for i := 0; i < 4 && (i == 0 || !g.Done()); i++ {
			cmd := derivedCommand(g, s)
			index := s.Index() + 1
			next, res, alloc := measuredApply(s, index, cmd)
			if alloc > fuzzMaxAlloc {
				t.Fatalf("applying %s allocated %d MiB", describe(cmd), alloc>>20)
			}
			again, res2 := state.Apply(s, index, cmd)
			if !proto.Equal(res, res2) || len(statetest.Diff(next, again, nil)) > 0 {
				t.Fatalf("applying %s twice gave different results:\n%v\n%v", describe(cmd), res, res2)
			}
			if res.GetError() != nil {
				if d := diffResources(s, next); d != "" {
					t.Fatalf("refused %s (%v) changed %s", describe(cmd), res.GetError(), d)
				}
			}
			for _, k := range []resource.Kind{resource.ListLearning, resource.Alert, resource.AuditCursor, resource.BudgetUsage} {
				next.Each(k, func(r *fsmv1.Resource) bool {
					if err := resource.Validate(r); err != nil {
						t.Fatalf("after %s the state holds a %s that Validate refuses: %v", describe(cmd), k, err)
					}
					return true
				})
			}
			s = next
		}
	})
}

// derivedCommand generates a version-2 command; counts it names follow
// the state's now and then, so batches are applied as well as refused.
func derivedCommand(g *limitstest.Gen, s *state.State) *fsmv1.Command {
	batches := func(name string) uint64 {
		r, _ := s.Get(resource.AuditCursor, name)
		n := r.GetAuditCursor().GetBatches()
		if g.Intn(4) == 3 {
			n = uint64(g.Intn(5))
		}
		return n
	}
	values := func() []*fsmv1.LearnedValue {
		var out []*fsmv1.LearnedValue
		for i, v := range g.Texts(limits.ListValues+2, limits.ListValue) {
			out = append(out, &fsmv1.LearnedValue{Value: v, RecordId: fmt.Sprint("dp1/", i)})
		}
		return out
	}
	change := func(gen uint64) *fsmv1.LearnedChange {
		scope := "agent:" + g.Name()
		switch g.Intn(8) {
		case 5:
			scope = "team:" + g.Name()
		case 6:
			scope = resource.ScopeGlobal
		case 7:
			scope = g.Text(limits.Name + 16)
		}
		list := "payees"
		if g.Intn(8) == 7 {
			list = g.Name()
		}
		return &fsmv1.LearnedChange{List: list, Scope: scope, Add: values(), Remove: g.Texts(4, limits.ListValue), Generation: gen}
	}
	var cmd *fsmv1.Command
	switch g.Intn(5) {
	case 4:
		cmd = statetest.Consume("budget", batches("budget"), map[string]uint64{"dp1": uint64(g.Intn(100))})
		start := int64(g.Intn(1<<20)) * 3600
		if g.Bool() {
			start = -start
		}
		for range g.Count(3) {
			name := "ops"
			if g.Intn(4) == 3 {
				name = g.Name()
			}
			d := &fsmv1.BudgetUsageDelta{Budget: name}
			for i := range g.Count(limits.BudgetUsageKeys + 2) {
				k := &configv1.BudgetKeyUsage{Key: fmt.Sprint("agent a", i%50), WindowStart: start, WindowEnd: start + int64(g.Intn(1<<16)) - 100,
					Calls: int64(g.Intn(1<<16)) - 10, Tokens: int64(g.Byte()) << 56, CostNanos: int64(g.Intn(1 << 16))}
				if i < 4 { // the first few carry fuzzed keys; the rest make up the count
					k.Key = g.Text(limits.BudgetKey + 16)
				}
				d.Add = append(d.Add, k)
			}
			cmd.GetConsumeAudit().BudgetUsage = append(cmd.GetConsumeAudit().BudgetUsage, d)
		}
	case 1:
		name := "a1"
		if g.Bool() {
			name = g.Name()
		}
		r, _ := s.Get(resource.Alert, name)
		cmd = statetest.Settle(name, r.GetAlert().GetAttempts()+int32(g.Intn(3)), fsmv1.AlertOutcome(g.Intn(5)))
		cmd.GetSettleAlert().Error = g.Text(limits.AlertText)
	case 2:
		cmd = statetest.ChangeLearned()
		for range g.Count(4) {
			cmd.GetChangeLearned().Changes = append(cmd.GetChangeLearned().Changes, change(0))
		}
	case 3:
		cmd = statetest.Consume("alert", batches("alert"), nil)
		for i := range g.Count(limits.ConsumeBatch + 2) {
			a := statetest.Alert(fmt.Sprint("b", i%7), "sec", fmt.Sprint("dp1/", i))
			if i < 4 { // the first few carry the fuzzed fields; the rest make up the count
				a.Rule = g.Name()
				a.Reason = g.Text(limits.AlertText)
				a.Event.Policies = g.Texts(limits.AlertPolicies+1, 2*limits.Name)
			}
			cmd.GetConsumeAudit().Alerts = append(cmd.GetConsumeAudit().Alerts, a)
		}
	default:
		l, _ := s.Get(resource.ListLearning, "payees")
		cmd = statetest.Consume("learn", batches("learn"), map[string]uint64{g.Name(): uint64(g.Intn(100))})
		cmd.GetConsumeAudit().Learned = []*fsmv1.LearnedChange{change(l.GetListLearning().GetGeneration())}
		if g.Bool() {
			cmd.GetConsumeAudit().Seeded = []*fsmv1.SeededLearning{{List: "payees", Generation: l.GetListLearning().GetGeneration()}}
		}
		if g.Intn(8) == 7 {
			cmd.GetConsumeAudit().Consumer = g.Name()
		}
	}
	return cmd
}

func withBudgetUsage(c *fsmv1.Command, deltas ...*fsmv1.BudgetUsageDelta) *fsmv1.Command {
	c.GetConsumeAudit().BudgetUsage = deltas
	return c
}
