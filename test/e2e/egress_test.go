package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestDataplaneDialsUnderTheControlPlanesEgressPolicy: the egress policy
// the control plane is given (its --egress-* flags) reaches the data plane
// in the snapshot, and the data plane dials upstreams under it. The demo
// upstream, registered while the policy allowed it, listens on 127.0.0.1:
// once the control plane's policy denies that address, the data plane
// refuses to dial it (upstream_unavailable, naming the egress policy); once
// a narrower --egress-allow lets it through again, calls succeed. (That
// metadata and link-local addresses are refused by the same policy is
// shown in the upstream package's tests, without dialing one.)
func TestDataplaneDialsUnderTheControlPlanesEgressPolicy(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp, cp := g.dps[0], g.c.Nodes[0]
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))

	// A policy change reaches data planes with the next snapshot version.
	restartWith := func(args ...string) {
		t.Helper()
		cp.RestartWith(args...)
		cp.AwaitReady(t, harness.StartTimeout)
		var out struct {
			Agent revisioned `json:"agent"`
		}
		harness.GwctlJSON(t, g.env(), &out, "agent", "create", "bump-"+randomHex(t, 4), "--timeout", "20s")
		awaitVersion(t, dp, uint64(out.Agent.Meta.Revision), 30*time.Second)
	}

	restartWith("--egress-deny", "127.0.0.0/8")
	c := mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "upstream_unavailable")
	if !strings.Contains(c.Text, "egress policy") {
		t.Errorf("refusal %q, want it to name the egress policy", c.Text)
	}
	calls, err := g.up.Calls()
	if err != nil {
		t.Fatal(err)
	}
	served := len(calls)

	restartWith("--egress-deny", "127.0.0.0/8", "--egress-allow", "127.0.0.1/32")
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	if calls, err := g.up.Calls(); err != nil || len(calls) <= served {
		t.Errorf("the upstream saw %d calls (err %v), want more than the %d before the allow", len(calls), err, served)
	}

	dp.MustCleanShutdown(t)
	g.c.MustCleanShutdown(t)
}
