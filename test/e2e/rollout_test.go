package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/canary"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// Names of the rollout test: ten agents the candidate denies payments to,
// the policy set under rollout, and its versions.
const (
	rolloutSet = "ops" // the set startGateway applies (version 1: opsPolicy)
	// noPayments is the first candidate: opsPolicy plus a forbid of
	// send_payment for agent-0 … agent-9.
	noPaymentsPolicy = `@id("no-payments")
forbid(principal, action == Action::"demo__send_payment", resource)
when { [Agent::"agent-0", Agent::"agent-1", Agent::"agent-2", Agent::"agent-3", Agent::"agent-4",
        Agent::"agent-5", Agent::"agent-6", Agent::"agent-7", Agent::"agent-8", Agent::"agent-9"].contains(principal) };
`
	// noWeatherPolicy is the second candidate's addition: nobody may get
	// the weather, which its gate must catch.
	noWeatherPolicy = `@id("no-weather")
forbid(principal, action == Action::"demo__get_weather", resource);
`
	// deadRule never matches the test's calls: nobody asks for Atlantis.
	deadRule = `@id("atlantis")
permit(principal == Agent::"dev-agent", action == Action::"demo__get_weather", resource)
when { context.arguments.city == "Atlantis" };
`
	// bigPayments reads the amount, which the data planes redact.
	bigPayments = `@id("big-payments")
forbid(principal, action == Action::"demo__send_payment", resource)
when { context.arguments.amount > 1000 };
`
)

// rolloutAgent is one agent calling in the rollout test.
type rolloutAgent struct {
	name string
	key  string
	// payments: policy version 1 lets it send payments (team ops), and
	// noPayments: the first candidate denies it them.
	payments, noPayments bool
}

// rolloutJSON is what the test reads of "gwctl rollout status -o json".
type rolloutJSON struct {
	Rollout struct {
		Meta struct {
			Name string `json:"name"`
		} `json:"meta"`
		Stage       string        `json:"stage"`
		CanaryStep  int           `json:"canaryStep"`
		Paused      bool          `json:"paused"`
		Reason      string        `json:"reason"`
		BaseVersion harness.Int64 `json:"baseVersion"`
	} `json:"rollout"`
	Status struct {
		Totals []struct {
			Stage             string        `json:"stage"`
			CanaryBasisPoints int           `json:"canaryBasisPoints"`
			Cohort            string        `json:"cohort"`
			Calls             harness.Int64 `json:"calls"`
			AllowToDeny       harness.Int64 `json:"allowToDeny"`
			DenyToAllow       harness.Int64 `json:"denyToAllow"`
			EvalErrors        harness.Int64 `json:"evalErrors"`
			Forwarded         harness.Int64 `json:"forwarded"`
		} `json:"totals"`
		Differences []struct {
			Agent       string        `json:"agent"`
			Tool        string        `json:"tool"`
			Cohort      string        `json:"cohort"`
			AllowToDeny harness.Int64 `json:"allowToDeny"`
		} `json:"differences"`
		Next string `json:"next"`
	} `json:"status"`
}

// counts are a cohort's totals as the test computes or reads them.
type counts struct{ calls, allowToDeny, denyToAllow, forwarded int64 }

// TestPolicyRolloutEndToEnd is the acceptance test of staged policy
// rollout with real processes: three control-plane nodes, two data planes,
// agents calling through both.
//
//  1. A candidate that denies send_payment to ten agents goes through
//     shadow: decisions stay the active version's, and the difference
//     counts the controller sees are exactly what the test computes from
//     its own calls; the audit records carry the sampled shadow decision.
//  2. Promoted to a 50% canary: on both data planes exactly the agents
//     whose hash (canary.In) falls under 50% get the candidate's
//     decisions, and the counts per cohort are the test's own again.
//  3. The control-plane leader is killed mid-rollout; the rollout resumes
//     on the new leader, whose controller completes it by itself.
//  4. A second candidate denies get_weather to everyone and breaches its
//     deny_increase gate: the controller rolls it back by itself, the
//     reason is in rollout status, the admin log and the audit chain, and
//     both data planes drop the candidate. An alert rule --on-rollback
//     pages once, signed, for that rollback (and for nothing before it).
//  5. gwctl policy rollback restores version 1 on both data planes.
//  6. Replay of calls recorded after that reports exactly the changed
//     decisions the test expects, names the dead rule, exits 1, and names
//     the calls it cannot judge because the data planes redacted a field
//     the candidate reads.
func TestPolicyRolloutEndToEnd(t *testing.T) {
	start := time.Now()
	g := startGateway(t, 3)
	c := g.c

	agents := []*rolloutAgent{
		{name: "ops-agent", key: g.opsKey, payments: true},
		{name: "dev-agent", key: g.devKey},
	}
	for i := range 10 {
		name := fmt.Sprintf("agent-%d", i)
		agents = append(agents, &rolloutAgent{name: name, key: g.createAgent(t, name, "ops"), payments: true, noPayments: true})
	}
	for _, name := range []string{"dp-a", "dp-b"} {
		g.dps = append(g.dps, g.startDataplane(t, name, "--rollout-summary-interval", "300ms", "--audit-redact", "amount"))
	}
	version := g.agentsVersion(t)
	for _, dp := range g.dps {
		dp.AwaitServing(t, harness.StartTimeout)
		awaitVersion(t, dp, version, 20*time.Second)
	}
	t.Logf("gateway with %d agents and two data planes up after %s", len(agents), time.Since(start).Round(time.Millisecond))
	hook := harness.StartWebhook(t)
	signingKey := "whsec_" + randomHex(t, 16)
	g.gwctl(t, "secret", "set", "rollout-alert-key", "--hosts", "127.0.0.1", "--from-file", g.writeFile(t, "rollout-alert.key", signingKey))
	g.gwctl(t, "alert", "rule", "create", "rollout-page", "--on-rollback", "--url", hook.URL, "--signing-secret", "rollout-alert-key")

	// 1. Shadow.
	var started struct {
		Rollout struct {
			Meta struct {
				Name string `json:"name"`
			} `json:"meta"`
			Stage string `json:"stage"`
		} `json:"rollout"`
	}
	harness.GwctlJSON(t, g.env(), &started, "rollout", "start", rolloutSet, "-f", g.writeFile(t, "no-payments.cedar", opsPolicy+noPaymentsPolicy),
		"--shadow", "1h", "--canary", "50%", "--step", "4s", "--auto-rollback", "eval_errors>0", "--message", "no payments for the agent fleet", "--timeout", "20s")
	id := started.Rollout.Meta.Name
	if started.Rollout.Stage != "ROLLOUT_STAGE_SHADOW" {
		t.Fatalf("rollout %s started in %s, want shadow", id, started.Rollout.Stage)
	}
	g.awaitDataplaneRollout(t, id, "shadow", 0)
	want := map[string]counts{}
	for _, dp := range g.dps {
		for _, a := range agents {
			// The active version decides: ops agents may do anything.
			g.expectCall(t, dp, a, actionPayment, a.payments)
			g.expectCall(t, dp, a, actionWeather, a.payments)
			want["shadow"] = add(want["shadow"], 2, b2i(a.payments && a.noPayments), 0, 2*b2i(a.payments))
		}
	}
	st := g.awaitTotals(t, id, "shadow", 0, "shadow", want["shadow"])
	t.Logf("shadow counts as computed: %+v; next: %s", want["shadow"], st.Status.Next)
	for _, d := range st.Status.Differences {
		if d.Tool != actionPayment || !strings.HasPrefix(d.Agent, "agent-") || d.AllowToDeny != 2 {
			t.Errorf("difference %+v: want agent-N, %s, 2 allow→deny (one per data plane)", d, actionPayment)
		}
	}
	g.expectShadowSample(t, "agent-3")

	// 2. Canary at 50%, held there while the test checks it.
	g.gwctl(t, "rollout", "promote", id)
	g.gwctl(t, "rollout", "pause", id, "--reason", "checking the canary")
	g.awaitDataplaneRollout(t, id, "canary", 5000)
	inCanary := 0
	for _, dp := range g.dps {
		for _, a := range agents {
			in := canary.In(id, a.name, 5000)
			allowPayment := a.payments && !(in && a.noPayments)
			g.expectCall(t, dp, a, actionPayment, allowPayment)
			g.expectCall(t, dp, a, actionWeather, a.payments)
			if in {
				inCanary++
				want["canary"] = add(want["canary"], 2, b2i(a.payments && a.noPayments), 0, b2i(allowPayment)+b2i(a.payments))
			} else {
				want["baseline"] = add(want["baseline"], 2, 0, 0, 2*b2i(a.payments))
			}
		}
	}
	t.Logf("%d of %d agents are in rollout %s's 50%% canary", inCanary/2, len(agents), id)
	g.awaitTotals(t, id, "canary", 5000, "canary", want["canary"])
	g.awaitTotals(t, id, "canary", 5000, "baseline", want["baseline"])
	g.expectCandidateRecords(t, id, agents)

	// 3. The leader dies mid-rollout; the next one finishes it.
	victim := c.Leader(t, 10*time.Second)
	victim.Kill()
	newLeader := c.Leader(t, 15*time.Second)
	t.Logf("killed leader %s; %s leads", victim.NodeID, newLeader.NodeID)
	g.gwctl(t, "rollout", "resume", id)
	g.awaitRollout(t, id, 25*time.Second, "complete", func(r rolloutJSON) error {
		if r.Rollout.Stage != "ROLLOUT_STAGE_COMPLETE" {
			return fmt.Errorf("stage %s", r.Rollout.Stage)
		}
		return nil
	})
	victim.Restart()
	victim.AwaitReady(t, harness.StartTimeout)
	g.awaitDataplaneRollout(t, "", "", 0)
	for _, dp := range g.dps {
		for _, a := range agents {
			g.expectCall(t, dp, a, actionPayment, a.payments && !a.noPayments)
		}
	}
	history := g.gwctl(t, "policy", "history", rolloutSet).Stdout
	if !strings.Contains(history, "rollout "+id) || !strings.Contains(history, "2*") {
		t.Fatalf("policy history does not show version 2 from rollout %s as active:\n%s", id, history)
	}

	// 4. A candidate whose gate the controller must catch.
	var second struct {
		Rollout struct {
			Meta struct {
				Name string `json:"name"`
			} `json:"meta"`
		} `json:"rollout"`
	}
	harness.GwctlJSON(t, g.env(), &second, "rollout", "start", rolloutSet, "-f", g.writeFile(t, "no-weather.cedar", opsPolicy+noPaymentsPolicy+noWeatherPolicy),
		"--shadow", "1h", "--auto-rollback", "deny_increase>10%,min_calls=4", "--timeout", "20s")
	id2 := second.Rollout.Meta.Name
	g.awaitDataplaneRollout(t, id2, "shadow", 0)
	breachCalls := time.Now()
	for _, dp := range g.dps {
		for _, a := range agents[:3] {
			g.expectCall(t, dp, a, actionWeather, a.payments)
		}
	}
	rolled := g.awaitRollout(t, id2, 15*time.Second, "rolled back by its gate", func(r rolloutJSON) error {
		if r.Rollout.Stage != "ROLLOUT_STAGE_ROLLED_BACK" {
			return fmt.Errorf("stage %s (%s)", r.Rollout.Stage, r.Status.Next)
		}
		return nil
	})
	if !strings.Contains(rolled.Rollout.Reason, "deny_increase>10%") || !strings.Contains(rolled.Rollout.Reason, "shadow") {
		t.Fatalf("rollout %s was rolled back with reason %q, want the deny_increase gate and the stage named", id2, rolled.Rollout.Reason)
	}
	g.awaitDataplaneRollout(t, "", "", 0)
	t.Logf("rollout %s rolled back %s after the breaching calls began: %s", id2, time.Since(breachCalls).Round(time.Millisecond), rolled.Rollout.Reason)
	for _, dp := range g.dps {
		g.expectCall(t, dp, agents[0], actionWeather, true)
	}
	g.expectRollbackLogged(t, id2)
	g.expectRollbackPaged(t, hook, []byte(signingKey), id2)

	// 5. Back to version 1 everywhere.
	var rb struct {
		PolicySet revisioned `json:"policySet"`
	}
	harness.GwctlJSON(t, g.env(), &rb, "policy", "rollback", rolloutSet, "--to", "1", "--message", "back to the first version", "--timeout", "20s")
	for _, dp := range g.dps {
		awaitVersion(t, dp, uint64(rb.PolicySet.Meta.Revision), 20*time.Second)
		for _, a := range agents {
			g.expectCall(t, dp, a, actionPayment, a.payments)
		}
	}

	// 6. Replay fresh traffic against the first candidate.
	t1 := time.Now()
	var changes int64
	records := 0
	for _, dp := range g.dps {
		for _, a := range agents {
			g.expectCall(t, dp, a, actionPayment, a.payments)
			g.expectCall(t, dp, a, actionWeather, a.payments)
			records += 2
			changes += b2i(a.payments && a.noPayments)
		}
	}
	t2 := time.Now()
	window := []string{"--from", t1.UTC().Format(time.RFC3339Nano), "--to", t2.Add(time.Millisecond).UTC().Format(time.RFC3339Nano)}
	var replay struct {
		Records      harness.Int64 `json:"records"`
		Judged       harness.Int64 `json:"judged"`
		AllowToDeny  harness.Int64 `json:"allowToDeny"`
		DenyToAllow  harness.Int64 `json:"denyToAllow"`
		DeadPolicies []string      `json:"deadPolicies"`
		ChangeCounts []struct {
			Agent       string        `json:"agent"`
			Tool        string        `json:"tool"`
			AllowToDeny harness.Int64 `json:"allowToDeny"`
		} `json:"changeCounts"`
		Unjudged []struct {
			Reason string        `json:"reason"`
			Count  harness.Int64 `json:"count"`
		} `json:"unjudged"`
	}
	candidate := g.writeFile(t, "replay.cedar", opsPolicy+noPaymentsPolicy+deadRule)
	var r harness.Result
	harness.Await(t, 20*time.Second, "every node's audit store holds the replayed calls", func() error {
		r = harness.Gwctl(t, g.env(), append([]string{"policy", "replay", rolloutSet, "-f", candidate, "-o", "json", "--timeout", "20s"}, window...)...)
		if err := r.JSON(&replay); err != nil {
			return err
		}
		if int(replay.Records) != records {
			return fmt.Errorf("%d call records in the window, want %d", replay.Records, records)
		}
		return nil
	})
	if r.Code != 1 {
		t.Fatalf("policy replay exited %d, want 1 (decisions change): %s", r.Code, r.Stderr)
	}
	if int64(replay.AllowToDeny) != changes || replay.DenyToAllow != 0 || int(replay.Judged) != records {
		t.Fatalf("replay: %d judged, %d allow→deny, %d deny→allow; want %d, %d, 0", replay.Judged, replay.AllowToDeny, replay.DenyToAllow, records, changes)
	}
	for _, cc := range replay.ChangeCounts {
		if !strings.HasPrefix(cc.Agent, "agent-") || cc.Tool != actionPayment || cc.AllowToDeny != 2 {
			t.Errorf("replay change %+v: want agent-N, %s, 2 allow→deny", cc, actionPayment)
		}
	}
	if len(replay.ChangeCounts) != 10 {
		t.Errorf("replay counted changes for %d agents, want 10", len(replay.ChangeCounts))
	}
	if !slices.Equal(replay.DeadPolicies, []string{rolloutSet + "/atlantis"}) {
		t.Errorf("replay named dead rules %v, want [%s/atlantis]", replay.DeadPolicies, rolloutSet)
	}
	// A candidate that reads the redacted amount cannot judge payments.
	r = harness.Gwctl(t, g.env(), append([]string{"policy", "replay", rolloutSet, "-f", g.writeFile(t, "big.cedar", opsPolicy+bigPayments), "-o", "json", "--timeout", "20s"}, window...)...)
	if err := r.JSON(&replay); err != nil {
		t.Fatal(err)
	}
	if r.Code != 0 || len(replay.Unjudged) != 1 || !strings.Contains(replay.Unjudged[0].Reason, "arguments.amount, which the record redacted") ||
		int(replay.Unjudged[0].Count) != records/2 || int(replay.Judged) != records/2 {
		t.Fatalf("replay of a candidate reading the redacted amount: exit %d, %d judged, unjudged %+v; want exit 0, %d judged, %d unjudged for the redacted amount",
			r.Code, replay.Judged, replay.Unjudged, records/2, records/2)
	}
	t.Logf("rollout test done in %s", time.Since(start).Round(time.Millisecond))
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func add(c counts, calls, allowToDeny, denyToAllow, forwarded int64) counts {
	return counts{c.calls + calls, c.allowToDeny + allowToDeny, c.denyToAllow + denyToAllow, c.forwarded + forwarded}
}

// agentsVersion is the current config version (after the agents were
// created).
func (g *gateway) agentsVersion(t *testing.T) uint64 {
	t.Helper()
	var out struct {
		ConfigVersion harness.Int64 `json:"configVersion"`
	}
	harness.GwctlJSON(t, g.env(), &out, "cluster", "status", "--timeout", "20s")
	return uint64(out.ConfigVersion)
}

// expectCall calls tool through dp as a and fails the test unless it was
// allowed (and ran) or denied by policy, as allow says.
func (g *gateway) expectCall(t *testing.T, dp *harness.Dataplane, a *rolloutAgent, tool string, allow bool) {
	t.Helper()
	args := weatherArgs("Oslo")
	if tool == actionPayment {
		args = paymentArgs("acme", 100)
	}
	if allow {
		mustCall(t, dp, a.key, tool, args)
		return
	}
	mustRefuse(t, dp, a.key, tool, args, "denied")
}

// awaitDataplaneRollout waits until both data planes report serving
// rollout id at stage (at share basis points); id "" means none.
func (g *gateway) awaitDataplaneRollout(t *testing.T, id, stage string, share int) {
	t.Helper()
	harness.Await(t, 20*time.Second, fmt.Sprintf("both data planes serve rollout %q at %q", id, stage), func() error {
		r := harness.Gwctl(t, g.env(), "dataplane", "list", "-o", "json", "--timeout", "10s")
		if err := r.Err(); err != nil {
			return err
		}
		var out struct {
			Dataplanes []struct {
				Name              string `json:"name"`
				Rollout           string `json:"rollout"`
				RolloutStage      string `json:"rolloutStage"`
				CanaryBasisPoints int    `json:"canaryBasisPoints"`
			} `json:"dataplanes"`
		}
		if err := r.JSON(&out); err != nil {
			return err
		}
		seen := 0
		for _, d := range out.Dataplanes {
			if d.Name != "dp-a" && d.Name != "dp-b" {
				continue
			}
			seen++
			if d.Rollout != id || d.RolloutStage != stage || d.CanaryBasisPoints != share {
				return fmt.Errorf("%s serves rollout %q %q %d", d.Name, d.Rollout, d.RolloutStage, d.CanaryBasisPoints)
			}
		}
		if seen != 2 {
			return fmt.Errorf("%d of the two data planes listed", seen)
		}
		return nil
	})
}

// rolloutStatus reads "gwctl rollout status id -o json".
func (g *gateway) rolloutStatus(t *testing.T, id string) (rolloutJSON, error) {
	t.Helper()
	var out rolloutJSON
	r := harness.Gwctl(t, g.env(), "rollout", "status", id, "-o", "json", "--timeout", "10s")
	if err := r.Err(); err != nil {
		return out, err
	}
	return out, r.JSON(&out)
}

// awaitRollout waits until cond holds for rollout id's status.
func (g *gateway) awaitRollout(t *testing.T, id string, timeout time.Duration, what string, cond func(rolloutJSON) error) rolloutJSON {
	t.Helper()
	var last rolloutJSON
	harness.Await(t, timeout, "rollout "+id+": "+what, func() error {
		st, err := g.rolloutStatus(t, id)
		if err != nil {
			return err
		}
		last = st
		return cond(st)
	})
	return last
}

// awaitTotals waits until the status of rollout id counts exactly want
// for cohort in the step (stage, share). Counts only grow, so a count
// above want fails at once.
func (g *gateway) awaitTotals(t *testing.T, id, stage string, share int, cohort string, want counts) rolloutJSON {
	t.Helper()
	return g.awaitRollout(t, id, 15*time.Second, fmt.Sprintf("%s %s counts %+v", stage, cohort, want), func(st rolloutJSON) error {
		var got counts
		for _, tot := range st.Status.Totals {
			if tot.Stage == stage && tot.CanaryBasisPoints == share && tot.Cohort == cohort {
				got = counts{int64(tot.Calls), int64(tot.AllowToDeny), int64(tot.DenyToAllow), int64(tot.Forwarded)}
			}
		}
		if got.calls > want.calls {
			t.Fatalf("rollout %s counts %+v for %s %s, more than the %+v the test made", id, got, stage, cohort, want)
		}
		if got != want {
			return fmt.Errorf("counts %+v, want %+v", got, want)
		}
		return nil
	})
}

// auditRecords are the records "gwctl audit query" prints.
type auditRecords struct {
	Records []struct {
		Agent          string   `json:"agent"`
		Decision       string   `json:"decision"`
		Kind           string   `json:"kind"`
		PolicyVersions []string `json:"policyVersions"`
		Rollout        *struct {
			ID        string `json:"id"`
			Stage     string `json:"stage"`
			Candidate bool   `json:"candidate"`
			Shadow    *struct {
				Decision  string   `json:"decision"`
				Policies  []string `json:"policies"`
				Candidate bool     `json:"candidate"`
			} `json:"shadow"`
		} `json:"rollout"`
		RolloutEvent *struct {
			Rollout   string `json:"rollout"`
			Action    string `json:"action"`
			Automatic bool   `json:"automatic"`
			Reason    string `json:"reason"`
		} `json:"rolloutEvent"`
	} `json:"records"`
}

func (g *gateway) auditQuery(t *testing.T, args ...string) auditRecords {
	t.Helper()
	var out auditRecords
	harness.GwctlJSON(t, g.env(), &out, append([]string{"audit", "query", "--all", "--limit", "1000", "--timeout", "20s"}, args...)...)
	return out
}

// expectShadowSample checks that the audit records of agent's shadowed
// payments carry the candidate's decision and its determining policy.
func (g *gateway) expectShadowSample(t *testing.T, agent string) {
	t.Helper()
	harness.Await(t, 10*time.Second, agent+"'s shadowed payments are audited with the candidate's decision", func() error {
		for _, r := range g.auditQuery(t, "--agent", agent, "--tool", actionPayment).Records {
			if s := r.Rollout; s != nil && s.Stage == "shadow" && s.Shadow != nil {
				if r.Decision != "allow" || s.Shadow.Decision != "deny" || !s.Shadow.Candidate || !slices.Equal(s.Shadow.Policies, []string{rolloutSet + "/no-payments"}) {
					t.Fatalf("shadow sample %+v of a %s record: want the candidate's deny by %s/no-payments", *s.Shadow, r.Decision, rolloutSet)
				}
				if !slices.Equal(r.PolicyVersions, []string{rolloutSet + "@1"}) {
					t.Fatalf("the shadowed call was decided by %v, want [%s@1]", r.PolicyVersions, rolloutSet)
				}
				return nil
			}
		}
		return fmt.Errorf("no record with a shadow decision yet")
	})
}

// expectCandidateRecords checks that the canary's payments are audited
// as decided by the candidate exactly for the agents in the canary.
func (g *gateway) expectCandidateRecords(t *testing.T, id string, agents []*rolloutAgent) {
	t.Helper()
	for _, a := range agents[2:4] {
		harness.Await(t, 10*time.Second, a.name+"'s canary calls are audited", func() error {
			n := 0
			for _, r := range g.auditQuery(t, "--agent", a.name, "--tool", actionPayment).Records {
				if r.Rollout == nil || r.Rollout.Stage != "canary" {
					continue
				}
				n++
				in := canary.In(id, a.name, 5000)
				if r.Rollout.Candidate != in {
					t.Fatalf("%s's canary record says candidate=%t; the agent's bucket says %t", a.name, r.Rollout.Candidate, in)
				}
				if in && !slices.Equal(r.PolicyVersions, []string{rolloutSet + "@2"}) {
					t.Fatalf("%s's canary payment was decided by %v, want [%s@2] (the candidate)", a.name, r.PolicyVersions, rolloutSet)
				}
			}
			if n < 2 {
				return fmt.Errorf("%d canary records", n)
			}
			return nil
		})
	}
}

// expectRollbackLogged checks the automatic rollback in the admin log and
// in the control plane's audit chain, where alerting reads it.
func (g *gateway) expectRollbackLogged(t *testing.T, id string) {
	t.Helper()
	var log struct {
		Events []struct {
			Op     string `json:"op"`
			Name   string `json:"name"`
			Method string `json:"method"`
			Detail string `json:"detail"`
		} `json:"events"`
	}
	harness.GwctlJSON(t, g.env(), &log, "admin-log", "--limit", "20", "--timeout", "20s")
	found := false
	for _, e := range log.Events {
		if e.Name == id && e.Op == "rollout_rollback" {
			found = true
			if e.Method != "RolloutController.Rollback" || !strings.Contains(e.Detail, "(automatic)") || !strings.Contains(e.Detail, "deny_increase>10%") {
				t.Errorf("admin log event %+v: want the controller's automatic rollback with its reason", e)
			}
		}
	}
	if !found {
		t.Errorf("the admin log has no rollback of rollout %s", id)
	}
	harness.Await(t, 10*time.Second, "the rollback is in the control plane's audit chain", func() error {
		for _, r := range g.auditQuery(t, "--dataplane", "control-plane").Records {
			if ev := r.RolloutEvent; ev != nil && ev.Rollout == id && ev.Action == "rollback" {
				if !ev.Automatic || r.Kind != "EVENT_KIND_ROLLOUT" || !strings.Contains(ev.Reason, "deny_increase") {
					t.Fatalf("audit record of the rollback: kind %s, %+v", r.Kind, *ev)
				}
				return nil
			}
		}
		return fmt.Errorf("no rollout event for %s yet", id)
	})
}

// expectRollbackPaged checks that the automatic rollback of rollout id
// paged the --on-rollback rule once, with a correctly signed alert naming
// the policy set and the gate, and that nothing else did (the operator's
// promotions, pauses and the first rollout's completion page no one).
func (g *gateway) expectRollbackPaged(t *testing.T, hook *harness.Webhook, key []byte, id string) {
	t.Helper()
	ds := hook.Await(t, 15*time.Second, "the rollback's alert", func(ds []harness.WebhookDelivery) error {
		if len(ds) == 0 {
			return errors.New("no delivery yet")
		}
		return nil
	})
	if len(ds) != 1 {
		t.Fatalf("the receiver got %d deliveries, want the rollback's alone", len(ds))
	}
	if err := verifySignature(ds[0], key); err != nil {
		t.Fatal(err)
	}
	var body alertBody
	if err := json.Unmarshal(ds[0].Body, &body); err != nil {
		t.Fatalf("alert body %q: %v", ds[0].Body, err)
	}
	if body.Rule != "rollout-page" || body.Event.Kind != "rollout_rollback" || body.Event.Target != "policy_set/"+rolloutSet ||
		!strings.Contains(body.Reason, id) || !strings.Contains(body.Reason, "deny_increase>10%") ||
		!strings.HasPrefix(body.RecordID, "control-plane/") {
		t.Fatalf("rollback alert %s: want rule rollout-page, a rollout_rollback of policy_set/%s naming %s and its gate, from the control plane's chain", ds[0].Body, rolloutSet, id)
	}
}
