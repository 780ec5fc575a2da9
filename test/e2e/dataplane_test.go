package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestDataplanesFollowPolicyAndSurviveLeaderKill is the acceptance test of
// the data path: two data planes follow a three-node control plane, enforce
// its policy (ops may call, dev may not), keep serving read-only calls
// without a single failure while the control-plane leader is killed with
// SIGKILL, and then pick up a change (the emergency brake, made through
// gwctl with the dead node's URL first) and its reversal. The upstream only
// ever sees its own secret, never an agent's API key.
func TestDataplanesFollowPolicyAndSurviveLeaderKill(t *testing.T) {
	g := startGateway(t, 3, "dp1", "dp2")

	for _, dp := range g.dps {
		c := mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
		if !strings.Contains(c.Text, "Oslo") {
			t.Errorf("dataplane %s: get_weather answered %q, want the upstream's report for Oslo", dp.Name, c.Text)
		}
		mustRefuse(t, dp, g.devKey, actionWeather, weatherArgs("Oslo"), "denied")
		mustCall(t, dp, g.opsKey, actionPayment, paymentArgs("acme", 100))
	}
	victim := g.c.Leader(t, 10*time.Second)
	onVictim := streamFrom(t, g, victim)
	for _, dp := range g.dps {
		awaitVersion(t, dp, g.policyVersion, 10*time.Second)
	}
	t.Logf("before the kill: %s streams from the leader %s", onVictim, victim.NodeID)

	stream := startReadStream(t, g.opsKey, g.dps, 50*time.Millisecond)
	harness.Await(t, 10*time.Second, "10 read-only calls before the kill", func() error {
		if n := stream.len(); n < 10 {
			return fmt.Errorf("%d calls so far", n)
		}
		return nil
	})
	victim.Kill()
	killedAt := time.Now()
	callsAtKill := stream.len()

	newLeader := g.c.Leader(t, 15*time.Second)
	if newLeader == victim {
		t.Fatalf("the killed node %s is still named leader", victim.NodeID)
	}
	t.Logf("new leader %s observed %s after the kill", newLeader.NodeID, time.Since(killedAt).Round(time.Millisecond))

	// The change goes through gwctl with every URL, the dead node's first.
	var urls []string
	urls = append(urls, victim.URL)
	for _, cp := range g.c.Followers(victim) {
		urls = append(urls, cp.URL)
	}
	env := g.c.Env(urls...)
	const reason = "e2e: leader killed"
	frozenAt := freeze(t, env, true, reason)
	for _, dp := range g.dps {
		st := awaitVersion(t, dp, frozenAt, 20*time.Second)
		t.Logf("%s serves version %d (the freeze is %d) %s after the kill", dp.Name, st.Version, frozenAt, time.Since(killedAt).Round(time.Millisecond))
	}
	// A few more calls after the change arrived on both, then the window
	// closes.
	arrived := stream.len()
	harness.Await(t, 10*time.Second, "4 read-only calls after the change arrived", func() error {
		if n := stream.len() - arrived; n < 4 {
			return fmt.Errorf("%d calls since", n)
		}
		return nil
	})
	calls := stream.Stop()

	var failed []string
	perDP := map[string]int{}
	var slowest time.Duration
	for i, c := range calls {
		perDP[c.dp]++
		slowest = max(slowest, c.res.Elapsed)
		if c.err != nil {
			failed = append(failed, fmt.Sprintf("call %d via %s at %+.3fs from the kill: %v", i, c.dp, c.res.Start.Sub(killedAt).Seconds(), c.err))
		}
	}
	t.Logf("read-only stream: %d calls (%v), %d before the kill, %d after the change arrived; slowest %s; %d failed",
		len(calls), perDP, callsAtKill, len(calls)-arrived, slowest.Round(time.Millisecond), len(failed))
	for _, f := range failed {
		t.Errorf("read-only call failed during the leader kill window: %s", f)
	}
	if callsAtKill < 10 || len(calls)-arrived < 4 || perDP["dp1"] == 0 || perDP["dp2"] == 0 {
		t.Errorf("the stream did not span the window: %d calls before the kill, %d after the change, per data plane %v", callsAtKill, len(calls)-arrived, perDP)
	}

	// Both data planes enforce the freeze: mutating refused with the
	// operator's reason, read-only served.
	for _, dp := range g.dps {
		c := mustRefuse(t, dp, g.opsKey, actionPayment, paymentArgs("acme", 200), "frozen")
		if !strings.Contains(c.Text, reason) {
			t.Errorf("dataplane %s: the frozen refusal says %q, want it to carry the reason %q", dp.Name, c.Text, reason)
		}
		mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Bergen"))
	}
	thawedAt := freeze(t, env, false, "")
	if thawedAt <= frozenAt {
		t.Errorf("freeze off has config version %d, not after the freeze's %d", thawedAt, frozenAt)
	}
	for _, dp := range g.dps {
		awaitVersion(t, dp, thawedAt, 20*time.Second)
		mustCall(t, dp, g.opsKey, actionPayment, paymentArgs("acme", 300))
	}

	// Any data plane that streamed from the dead node now streams from a
	// live one, and the control plane knows both are current.
	harness.Await(t, 15*time.Second, "dataplane list shows both data planes connected to live nodes at the current version", func() error {
		st, err := listDataplanes(t, env)
		if err != nil {
			return err
		}
		for _, dp := range g.dps {
			s, ok := st[dp.Name]
			switch {
			case !ok:
				return fmt.Errorf("%s not listed: %+v", dp.Name, st)
			case !s.Connected || s.NodeID == victim.NodeID || uint64(s.ServingVersion) < thawedAt:
				return fmt.Errorf("%s: %+v", dp.Name, s)
			}
		}
		return nil
	})

	// What reached the upstream: every call carried the upstream's secret
	// and nothing of an agent's API key.
	upCalls, err := g.up.Calls()
	if err != nil {
		t.Fatal(err)
	}
	weather := 0
	for i, c := range upCalls {
		if c.Tool == "get_weather" {
			weather++
		}
		if c.Authorization != "Bearer "+g.upstreamSecret {
			t.Errorf("upstream call %d (%s) carried Authorization %q, want the upstream secret", i, c.Tool, c.Authorization)
		}
		for name, vals := range c.Header {
			for _, v := range vals {
				for _, key := range []string{g.opsKey, g.devKey} {
					if strings.Contains(v, key) {
						t.Errorf("upstream call %d (%s) carried an agent API key in header %s", i, c.Tool, name)
					}
				}
			}
		}
	}
	if ok := len(calls) - len(failed); weather < ok {
		t.Errorf("the upstream saw %d get_weather calls, fewer than the %d the stream got answers for", weather, ok)
	}
	t.Logf("the upstream received %d calls (%d get_weather), all with its own secret only", len(upCalls), weather)

	for _, dp := range g.dps {
		dp.MustCleanShutdown(t)
	}
	g.c.MustCleanShutdown(t)
}

// streamFrom makes sure a data plane streams from node, so that killing the
// node breaks a live stream, and returns its name. A data plane dials a
// random control-plane node first, so when none streams from node, dp1 is
// restarted until it lands there (one chance in three per try).
func streamFrom(t *testing.T, g *gateway, node *harness.ControlPlane) string {
	t.Helper()
	var restartedAt time.Time // of dp1, whose stream must be newer
	for try := 0; ; try++ {
		var st map[string]dataplaneStatus
		harness.Await(t, 10*time.Second, "dataplane list shows every data plane connected", func() error {
			var err error
			if st, err = listDataplanes(t, g.env()); err != nil {
				return err
			}
			for _, dp := range g.dps {
				if s := st[dp.Name]; !s.Connected {
					return fmt.Errorf("%s: %+v", dp.Name, s)
				}
			}
			if s := st[g.dps[0].Name]; s.LastSeen.Before(restartedAt) {
				return fmt.Errorf("%s: %+v is from before its restart", g.dps[0].Name, s)
			}
			return nil
		})
		for _, dp := range g.dps {
			if st[dp.Name].NodeID == node.NodeID {
				return dp.Name
			}
		}
		if try == 20 {
			t.Fatalf("no data plane streams from %s after %d restarts of %s: %+v", node.NodeID, try, g.dps[0].Name, st)
		}
		t.Logf("no data plane streams from %s (%+v); restarting %s", node.NodeID, st, g.dps[0].Name)
		g.dps[0].MustCleanShutdown(t)
		restartedAt = time.Now()
		g.dps[0].Restart()
		g.dps[0].AwaitServing(t, harness.StartTimeout)
	}
}

// TestDegradedModeAndLastKnownGood stops every control-plane node: both
// data planes turn degraded within seconds (/readyz and /metrics), keep
// serving read-only calls, refuse mutating ones at once with reason
// "degraded" and audit them as degraded. A data plane restarted while the
// control plane is still down serves its last-known-good snapshot from disk,
// degraded. Once the control plane is back, both return to normal.
func TestDegradedModeAndLastKnownGood(t *testing.T) {
	g := startGateway(t, 3, "dp1", "dp2")
	dp1, dp2 := g.dps[0], g.dps[1]
	version := map[string]uint64{}
	for _, dp := range g.dps {
		st, err := dp.Readyz()
		if err != nil {
			t.Fatal(err)
		}
		version[dp.Name] = st.Version
		mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
		mustCall(t, dp, g.opsKey, actionPayment, paymentArgs("acme", 100))
	}

	g.c.MustCleanShutdown(t)
	stoppedAt := time.Now()
	for _, dp := range g.dps {
		st := dp.AwaitReadyz(t, degradedAfter+5*time.Second, "degraded after the control plane went away", func(st harness.ReadyStatus) error {
			if st.Mode != "degraded" {
				return fmt.Errorf("want mode degraded")
			}
			return nil
		})
		t.Logf("%s degraded %s after the control plane stopped (last contact %s before the stop): %s", dp.Name,
			time.Since(stoppedAt).Round(time.Millisecond), stoppedAt.Sub(st.LastContact).Round(time.Millisecond), st)
		if st.HTTPStatus != 200 || st.ControlPlane || st.Version != version[dp.Name] {
			t.Errorf("%s degraded: /readyz %s; want 200, no control plane, version %d", dp.Name, st, version[dp.Name])
		}
		if age := time.Since(st.LastContact); age < degradedAfter {
			t.Errorf("%s turned degraded %s after its last contact, before --degraded-after %s", dp.Name, age, degradedAfter)
		}
		m, err := dp.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		for series, want := range map[string]float64{
			`portcullis_dataplane_mode{mode="degraded"}`: 1,
			`portcullis_dataplane_mode{mode="normal"}`:   0,
			`portcullis_dataplane_snapshot_version`:      float64(version[dp.Name]),
		} {
			if got, ok := m[series]; !ok || got != want {
				t.Errorf("%s /metrics: %s = %v (present %t), want %v", dp.Name, series, got, ok, want)
			}
		}
	}

	const mutating = 3
	for _, dp := range g.dps {
		m0, err := dp.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		for i := range mutating {
			mustCall(t, dp, g.opsKey, actionWeather, weatherArgs(fmt.Sprintf("degraded-%d", i)))
			c := mustRefuse(t, dp, g.opsKey, actionPayment, paymentArgs("acme", 100+i), "degraded")
			if c.Elapsed > time.Second {
				t.Errorf("%s: the degraded refusal of a mutating call took %s, want it within 1s", dp.Name, c.Elapsed)
			}
		}
		m1, err := dp.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		const refused = `portcullis_dataplane_refusals_total{reason="degraded"}`
		if d := m1[refused] - m0[refused]; d != mutating {
			t.Errorf("%s /metrics: %s rose by %v, want %d", dp.Name, refused, d, mutating)
		}
		recs, err := dp.AuditRecords()
		if err != nil {
			t.Fatal(err)
		}
		var refusedRecs, servedRecs int
		for _, r := range recs {
			if r.Mode != "degraded" || r.Agent != "ops-agent" || uint64(r.SnapshotVersion) != version[dp.Name] || r.Dataplane != dp.Name {
				continue
			}
			switch {
			case r.Tool == actionPayment && r.Outcome == "refused" && r.Reason == "degraded":
				refusedRecs++
			case r.Tool == actionWeather && r.TargetOwn == "get_weather" && r.Outcome == "ok":
				servedRecs++
			}
		}
		if refusedRecs != mutating || servedRecs != mutating {
			t.Errorf("%s audit log: %d degraded refusals of send_payment and %d degraded get_weather calls served, want %d of each; records:\n%+v",
				dp.Name, refusedRecs, servedRecs, mutating, recs)
		}
	}

	// dp2 restarts while no control plane answers: it serves from disk.
	dp2.MustCleanShutdown(t)
	logBefore := len(dp2.Log.String())
	dp2.Restart()
	dp2.AwaitServing(t, harness.StartTimeout)
	st, err := dp2.Readyz()
	if err != nil {
		t.Fatal(err)
	}
	if st.HTTPStatus != 200 || st.Mode != "degraded" || st.Version != version[dp2.Name] || st.ControlPlane {
		t.Errorf("dp2 restarted without a control plane: /readyz %s; want 200, degraded, version %d, no control plane", st, version[dp2.Name])
	}
	if !strings.Contains(dp2.Log.String()[logBefore:], "serving the last-known-good snapshot from disk") {
		t.Errorf("dp2's log after the restart does not say it serves the last-known-good snapshot from disk")
	}
	mustCall(t, dp2, g.opsKey, actionWeather, weatherArgs("from-disk"))
	mustRefuse(t, dp2, g.opsKey, actionPayment, paymentArgs("acme", 1), "degraded")
	mustRefuse(t, dp2, g.devKey, actionWeather, weatherArgs("from-disk"), "denied")

	// The control plane comes back from its data dirs.
	for _, cp := range g.c.Nodes {
		cp.Restart()
	}
	for _, cp := range g.c.Nodes {
		cp.AwaitReady(t, harness.StartTimeout)
	}
	backAt := time.Now()
	for _, dp := range []*harness.Dataplane{dp1, dp2} {
		st := dp.AwaitReadyz(t, 30*time.Second, "normal again with the control plane back", func(st harness.ReadyStatus) error {
			if st.Mode != "normal" || !st.ControlPlane {
				return fmt.Errorf("want mode normal with the control plane")
			}
			return nil
		})
		t.Logf("%s normal %s after the control plane was ready again: %s", dp.Name, time.Since(backAt).Round(time.Millisecond), st)
		mustCall(t, dp, g.opsKey, actionPayment, paymentArgs("acme", 500))
	}

	for _, dp := range g.dps {
		dp.MustCleanShutdown(t)
	}
	g.c.MustCleanShutdown(t)
}

// invalidInputSchema is an input schema the control plane stores (it only
// requires a JSON object) but the data plane cannot compile as JSON Schema:
// "type" must be a type name or a list of them, not a number.
const invalidInputSchema = `{"type":"object","properties":{"x":{"type":12}}}`

// TestSnapshotRejectedIsNackedAndPreviousKeepsServing pins a tool whose
// input schema the data plane refuses to compile. The data plane rejects
// that snapshot, reports the rejection (gwctl dataplane list shows it with
// the reason) and keeps serving the previous version; a corrected pin is
// applied again.
func TestSnapshotRejectedIsNackedAndPreviousKeepsServing(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	before, err := dp.Readyz()
	if err != nil {
		t.Fatal(err)
	}

	bad := g.pin(t, "list_invoices", "read-only", `{"name":"list_invoices","description":"List invoices.","inputSchema":`+invalidInputSchema+`}`)
	if bad <= before.Version {
		t.Fatalf("the pin has config version %d, not after the served %d", bad, before.Version)
	}
	var nack dataplaneStatus
	harness.Await(t, 15*time.Second, fmt.Sprintf("dataplane list shows dp1 rejected version %d", bad), func() error {
		st, err := listDataplanes(t, g.env())
		if err != nil {
			return err
		}
		nack = st["dp1"]
		if uint64(nack.ReportedVersion) != bad || nack.Applied {
			return fmt.Errorf("dp1: %+v", nack)
		}
		return nil
	})
	t.Logf("dataplane list: %+v", nack)
	if !strings.Contains(nack.Reason, "input schema") || !strings.Contains(nack.Reason, "demo/list_invoices") {
		t.Errorf("the rejection reason %q does not name the tool pin and its input schema", nack.Reason)
	}
	if uint64(nack.ServingVersion) != before.Version || !nack.Connected || nack.Lag <= 0 {
		t.Errorf("dataplane list: dp1 serves %d (want %d), connected %t, lag %d (want > 0)", nack.ServingVersion, before.Version, nack.Connected, nack.Lag)
	}

	st, err := dp.Readyz()
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != before.Version || st.Mode != "normal" || st.HTTPStatus != 200 {
		t.Errorf("after the rejection /readyz says %s; want 200, normal, version %d", st, before.Version)
	}
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	mustCall(t, dp, g.opsKey, actionPayment, paymentArgs("acme", 100))
	// The rejected version's new tool is not served: the previous snapshot is.
	mustRefuse(t, dp, g.opsKey, actionInvoices, map[string]any{}, "unknown_tool")
	m, err := dp.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m[`portcullis_dataplane_snapshots_total{result="rejected"}`] < 1 || m[`portcullis_dataplane_snapshot_version`] != float64(before.Version) {
		t.Errorf("/metrics: %v rejected snapshots, version %v; want ≥ 1 and %d",
			m[`portcullis_dataplane_snapshots_total{result="rejected"}`], m[`portcullis_dataplane_snapshot_version`], before.Version)
	}
	if !strings.Contains(dp.Log.String(), "snapshot rejected; the previous one keeps serving") {
		t.Errorf("dp1's log does not report the rejected snapshot")
	}

	// The operator corrects the pin: the next snapshot is applied.
	good := g.pin(t, "list_invoices", "read-only", invoicesDefinition)
	awaitVersion(t, dp, good, 15*time.Second)
	c := mustCall(t, dp, g.opsKey, actionInvoices, map[string]any{"customer": "acme"})
	if !strings.Contains(c.Text, "inv-1") {
		t.Errorf("list_invoices answered %q, want acme's invoice inv-1", c.Text)
	}
	harness.Await(t, 15*time.Second, fmt.Sprintf("dataplane list shows dp1 applied version %d", good), func() error {
		st, err := listDataplanes(t, g.env())
		if err != nil {
			return err
		}
		s := st["dp1"]
		if uint64(s.ReportedVersion) != good || !s.Applied || s.Reason != "" || uint64(s.ServingVersion) != good {
			return fmt.Errorf("dp1: %+v", s)
		}
		return nil
	})

	dp.MustCleanShutdown(t)
	g.c.MustCleanShutdown(t)
}

// TestCorruptLastKnownGoodIsRefused damages the data plane's snapshot on
// disk (a flipped byte, then a truncation) and starts it with no control
// plane reachable: it refuses the file, says so in its log, and reports
// starting (503) rather than serving garbage. With the control plane back it
// serves again and writes a good last-known-good snapshot, which a later
// restart without the control plane serves from.
func TestCorruptLastKnownGoodIsRefused(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	cp := g.c.Nodes[0]
	good, err := dp.Readyz()
	if err != nil {
		t.Fatal(err)
	}
	dp.MustCleanShutdown(t)
	g.c.MustCleanShutdown(t)
	lkg, err := os.ReadFile(dp.LastKnownGoodFile())
	if err != nil {
		t.Fatal(err)
	}

	for _, damage := range []struct {
		name  string
		bytes func([]byte) []byte
		log   *regexp.Regexp // the refusal as the log shows it
	}{
		{"flipped byte", func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[len(b)/2] ^= 0x01
			return b
		}, regexp.MustCompile(`last-known-good snapshot refused.*authentication failed`)},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] },
			regexp.MustCompile(`last-known-good snapshot refused.*truncated`)},
	} {
		if dp.Running() {
			dp.MustCleanShutdown(t)
		}
		if err := os.WriteFile(dp.LastKnownGoodFile(), damage.bytes(lkg), 0o600); err != nil {
			t.Fatal(err)
		}
		logBefore := len(dp.Log.String())
		dp.Restart()
		dp.AwaitServing(t, harness.StartTimeout)
		st, err := dp.Readyz()
		if err != nil {
			t.Fatal(err)
		}
		if st.HTTPStatus != 503 || st.Mode != "starting" || st.Version != 0 {
			t.Errorf("%s: /readyz says %s; want 503, starting, version 0", damage.name, st)
		}
		if log := dp.Log.String()[logBefore:]; !damage.log.MatchString(log) {
			t.Errorf("%s: the log does not match %q:\n%s", damage.name, damage.log, log)
		}
		m, err := dp.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		if m[`portcullis_dataplane_mode{mode="starting"}`] != 1 || m[`portcullis_dataplane_snapshot_version`] != 0 {
			t.Errorf("%s: /metrics: starting=%v, version=%v; want 1 and 0", damage.name, m[`portcullis_dataplane_mode{mode="starting"}`], m[`portcullis_dataplane_snapshot_version`])
		}
		mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "no_config")
	}

	// The control plane comes back; the data plane, still running since it
	// refused the truncated file, gets its configuration from it.
	cp.Restart()
	cp.AwaitReady(t, harness.StartTimeout)
	backAt := time.Now()
	st := awaitVersion(t, dp, good.Version, 30*time.Second)
	t.Logf("dp1 serves %s after the control plane was ready again: %s", time.Since(backAt).Round(time.Millisecond), st)
	if st.Version != good.Version {
		t.Errorf("with the control plane back dp1 serves version %d, want %d", st.Version, good.Version)
	}
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))

	// It replaced the damaged file: without a control plane it now starts
	// degraded from disk.
	dp.MustCleanShutdown(t)
	g.c.MustCleanShutdown(t)
	dp.Restart()
	dp.AwaitServing(t, harness.StartTimeout)
	if st, err := dp.Readyz(); err != nil || st.Mode != "degraded" || st.Version != good.Version {
		t.Errorf("restarted without a control plane after the repair: /readyz %s (err %v); want degraded, version %d", st, err, good.Version)
	}
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	dp.MustCleanShutdown(t)
}

// TestRevokedDataplaneIsCutOff revokes dp2's join credential: dp2 loses its
// stream at once, turns degraded after --degraded-after and misses later
// changes, while dp1 stays connected, normal and current.
func TestRevokedDataplaneIsCutOff(t *testing.T) {
	g := startGateway(t, 1, "dp1", "dp2")
	dp1, dp2 := g.dps[0], g.dps[1]
	mustCall(t, dp2, g.opsKey, actionPayment, paymentArgs("acme", 100))

	g.gwctl(t, "dataplane", "token", "revoke", "dp2")
	revokedAt := time.Now()
	dp2.AwaitReadyz(t, 5*time.Second, "loses the control plane", func(st harness.ReadyStatus) error {
		if st.ControlPlane {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	t.Logf("dp2 lost its stream %s after the revocation", time.Since(revokedAt).Round(time.Millisecond))
	// While dp2 waits out --degraded-after, dp1 stays normal and connected.
	var dp1Seen []string
	st := dp2.AwaitReadyz(t, degradedAfter+5*time.Second, "degraded after the revocation", func(st harness.ReadyStatus) error {
		if s1, err := dp1.Readyz(); err != nil || s1.Mode != "normal" || !s1.ControlPlane {
			dp1Seen = append(dp1Seen, fmt.Sprintf("%s (err %v)", s1, err))
		}
		if st.Mode != "degraded" {
			return fmt.Errorf("want mode degraded")
		}
		return nil
	})
	t.Logf("dp2 degraded %s after the revocation: %s", time.Since(revokedAt).Round(time.Millisecond), st)
	if age := time.Since(st.LastContact); age < degradedAfter {
		t.Errorf("dp2 turned degraded %s after its last contact, before --degraded-after %s", age, degradedAfter)
	}
	for _, s := range dp1Seen {
		t.Errorf("dp1 while dp2 was cut off: /readyz %s; want normal with the control plane", s)
	}
	if !regexp.MustCompile(`(?i)revoked`).MatchString(dp2.Log.String()) {
		t.Errorf("dp2's log does not say its credential was revoked")
	}
	mustRefuse(t, dp2, g.opsKey, actionPayment, paymentArgs("acme", 100), "degraded")
	mustCall(t, dp2, g.opsKey, actionWeather, weatherArgs("Oslo"))

	// dp1, past --degraded-after since the revocation, is unaffected…
	if st, err := dp1.Readyz(); err != nil || st.Mode != "normal" || !st.ControlPlane {
		t.Errorf("dp1 after dp2's revocation: /readyz %s (err %v); want normal with the control plane", st, err)
	}
	mustCall(t, dp1, g.opsKey, actionPayment, paymentArgs("acme", 100))

	// …and gets a change that dp2 never sees: team dev is now permitted.
	devVersion := g.applyPolicy(t, "dev", `permit(principal in Team::"dev", action in Action::"call_tool", resource);`+"\n")
	awaitVersion(t, dp1, devVersion, 15*time.Second)
	mustCall(t, dp1, g.devKey, actionWeather, weatherArgs("Oslo"))
	mustRefuse(t, dp2, g.devKey, actionWeather, weatherArgs("Oslo"), "denied")
	if st, err := dp2.Readyz(); err != nil || st.Version >= devVersion || st.ControlPlane || st.Mode != "degraded" {
		t.Errorf("dp2 after the change: /readyz %s (err %v); want degraded, no control plane, version < %d", st, err, devVersion)
	}
	harness.Await(t, 10*time.Second, "dataplane list shows dp2 disconnected and dp1 current", func() error {
		st, err := listDataplanes(t, g.env())
		if err != nil {
			return err
		}
		if s := st["dp2"]; s.Name == "" || s.Connected {
			return fmt.Errorf("dp2: %+v", s)
		}
		if s := st["dp1"]; !s.Connected || uint64(s.ServingVersion) < devVersion {
			return fmt.Errorf("dp1: %+v", s)
		}
		return nil
	})

	for _, dp := range g.dps {
		dp.MustCleanShutdown(t)
	}
	g.c.MustCleanShutdown(t)
}

// readStream makes read-only calls (get_weather as one agent) at a steady
// pace, alternating between data planes, until stopped.
type readStream struct {
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	calls    []streamCall
}

// streamCall is one call of a readStream; err is nil when the tool ran
// and answered for the city asked about.
type streamCall struct {
	dp  string
	res harness.ToolCall
	err error
}

// startReadStream starts calling every interval; the test's cleanup stops
// it if the test does not.
func startReadStream(t *testing.T, key string, dps []*harness.Dataplane, every time.Duration) *readStream {
	s := &readStream{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			dp := dps[i%len(dps)]
			city := fmt.Sprintf("city-%d", i)
			res, err := dp.CallTool(context.Background(), key, actionWeather, weatherArgs(city))
			if err == nil {
				err = res.Err()
			}
			if err == nil && !strings.Contains(res.Text, city) {
				err = fmt.Errorf("answer %q is not about %s", res.Text, city)
			}
			s.mu.Lock()
			s.calls = append(s.calls, streamCall{dp: dp.Name, res: res, err: err})
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.Stop() })
	return s
}

// len is the number of calls made so far.
func (s *readStream) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Stop lets the call in flight finish, stops the stream and returns every
// call it made. It may be called more than once.
func (s *readStream) Stop() []streamCall {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]streamCall(nil), s.calls...)
}
