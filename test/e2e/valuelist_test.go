package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestValueListGovernsPayments applies the counterparties example: payments
// go only to payees on a value list kept in the control plane, and a change
// of the list changes decisions once the new version reaches the data plane.
func TestValueListGovernsPayments(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	payerKey := g.createAgent(t, "payer-agent", "payments")

	source, err := os.ReadFile("../../examples/policies/counterparties.cedar")
	if err != nil {
		t.Fatal(err)
	}
	// Applying the set before its list exists is refused, naming the list.
	file := g.writeFile(t, "counterparties.cedar", string(source))
	r := harness.Gwctl(t, g.env(), "policy", "apply", "-f", file, "--name", "counterparties", "--timeout", "20s")
	if r.Err() == nil || !strings.Contains(r.Stderr, `value list "approved-payees"`) || !strings.Contains(r.Stderr, "gwctl valuelist create") {
		t.Fatalf("applying a set over a missing list: %v, stderr %q; want a refusal naming the list", r.Err(), r.Stderr)
	}

	g.gwctl(t, "valuelist", "create", "approved-payees", "--value", "acme-corp", "--value", "globex")
	version := g.applyPolicy(t, "counterparties", string(source))
	awaitVersion(t, dp, version, 20*time.Second)

	mustCall(t, dp, payerKey, actionPayment, paymentArgs("acme-corp", 100))
	mustRefuse(t, dp, payerKey, actionPayment, paymentArgs("initech", 100), "denied")
	// The forbid binds agents another set permits everything (team ops).
	mustRefuse(t, dp, g.opsKey, actionPayment, paymentArgs("initech", 100), "denied")

	var added struct {
		ValueList revisioned `json:"valueList"`
	}
	harness.GwctlJSON(t, g.env(), &added, "valuelist", "add", "approved-payees", "initech", "--timeout", "20s")
	awaitVersion(t, dp, uint64(added.ValueList.Meta.Revision), 20*time.Second)
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("initech", 100))
	mustCall(t, dp, g.opsKey, actionPayment, paymentArgs("initech", 100))

	// The list cannot be deleted while the set names it.
	r = harness.Gwctl(t, g.env(), "valuelist", "delete", "approved-payees", "--timeout", "20s")
	if r.Err() == nil || !strings.Contains(r.Stderr, `policy set "counterparties"`) {
		t.Fatalf("deleting a list in use: %v, stderr %q; want a refusal naming the policy set", r.Err(), r.Stderr)
	}
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("globex", 100))
}
