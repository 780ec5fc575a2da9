package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// learnPolicy is the learning period: the payments team may pay anyone,
// and the list learns whom each agent pays.
const learnPolicy = `@id("payments-may-pay")
permit(principal in Team::"payments", action == Action::"demo__send_payment", resource);
`

// alertBody is the generic alert body, as far as the test reads it.
type alertBody struct {
	ID       string `json:"id"`
	Rule     string `json:"rule"`
	RecordID string `json:"record_id"`
	Reason   string `json:"reason"`
	Event    struct {
		Kind     string   `json:"kind"`
		Agent    string   `json:"agent"`
		Target   string   `json:"target"`
		Decision string   `json:"decision"`
		Policies []string `json:"policies"`
		Tags     []string `json:"tags"`
	} `json:"event"`
}

// verifySignature checks a delivery the way a receiver must, written out
// from the documented format rather than with the gateway's code:
// Portcullis-Signature is "t=<unix seconds>,v1=<hex HMAC-SHA256(key,
// "<t>." || body)>", and a timestamp far from now is a replay.
func verifySignature(d harness.WebhookDelivery, key []byte) error {
	var ts, sig string
	for _, part := range strings.Split(d.Header.Get("Portcullis-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("signature header %q has no timestamp", d.Header.Get("Portcullis-Signature"))
	}
	if age := d.At.Sub(time.Unix(sec, 0)); age > time.Minute || age < -time.Minute {
		return fmt.Errorf("signature timestamp %d is %s from the delivery", sec, age)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts + "."))
	m.Write(d.Body)
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("signature %q does not match the body", sig)
	}
	return nil
}

// learned reads what the list learned, by scope.
func learnedSets(t *testing.T, env []string, list string) (map[string][]string, uint64) {
	t.Helper()
	var out struct {
		Learning struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
			Seeded bool `json:"seeded"`
			Sets   []struct {
				Scope  string   `json:"scope"`
				Values []string `json:"values"`
			} `json:"sets"`
		} `json:"learning"`
	}
	harness.GwctlJSON(t, env, &out, "valuelist", "get", list, "--timeout", "20s")
	sets := map[string][]string{}
	for _, s := range out.Learning.Sets {
		sets[s.Scope] = s.Values
	}
	return sets, uint64(out.Learning.Meta.Revision)
}

// TestPaymentToAStrangerIsDeniedAndPaged is the scenario of learned
// counterparties and alerts with real processes: a payments agent's list
// of payees learns from its successful payments (not from a failed one);
// a policy then allows only learned payees and pages the security team on
// a denial. A payment to a stranger is denied naming the policy; the
// webhook receives a correctly signed alert within 2 seconds naming the
// audit record, which names the policy; the operator approves the payee
// from that record and the same payment passes. Then the control-plane
// leader is killed while an alert waits in the outbox (its receiver
// failing): the next leader delivers it, exactly once.
func TestPaymentToAStrangerIsDeniedAndPaged(t *testing.T) {
	g := startGateway(t, 3, "dp1")
	dp := g.dps[0]
	env := g.env()
	payerKey := g.createAgent(t, "payer-agent", "payments")

	hook := harness.StartWebhook(t)
	signingKey := "whsec_" + randomHex(t, 16)
	g.gwctl(t, "secret", "set", "alert-signing-key", "--hosts", "127.0.0.1", "--from-file", g.writeFile(t, "alert.key", signingKey))
	g.gwctl(t, "alert", "rule", "create", "security-page", "--on-deny", "security", "--url", hook.URL, "--signing-secret", "alert-signing-key")

	// The learning period: the list learns whom payer-agent pays.
	g.gwctl(t, "valuelist", "create", "payees")
	g.gwctl(t, "valuelist", "learn", "payees", "--tool", actionPayment, "--argument", "to", "--scope", "agent")
	awaitVersion(t, dp, g.applyPolicy(t, "payments", learnPolicy), 20*time.Second)
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("acme-corp", 100))
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("globex", 250))
	// A payment that fails (the upstream refuses a zero amount) teaches
	// nothing.
	if c, err := dp.CallTool(t.Context(), payerKey, actionPayment, paymentArgs("broken-payee", 0)); err != nil || !c.IsError {
		t.Fatalf("a zero payment: %v, isError %v; want the upstream's tool error", err, c.IsError)
	}
	var revision uint64
	harness.Await(t, 20*time.Second, "the list learned both payees", func() error {
		sets, rev := learnedSets(t, env, "payees")
		if got := sets["agent:payer-agent"]; !slices.Equal(got, []string{"acme-corp", "globex"}) {
			return fmt.Errorf("learned %v", sets)
		}
		revision = rev
		return nil
	})
	awaitVersion(t, dp, revision, 20*time.Second)
	if lag, err := learningLag(t, g, dp, "acme-corp"); err != nil {
		t.Logf("learning lag not measured: %v", err)
	} else {
		t.Logf("lag from the successful payment to acme-corp to data plane dp1 serving a list that holds it: %s (from the audit trail)", lag.Round(time.Millisecond))
	}

	// From now on only learned payees, and a denial pages.
	guard, err := os.ReadFile("../../examples/policies/learned-payees.cedar")
	if err != nil {
		t.Fatal(err)
	}
	awaitVersion(t, dp, g.applyPolicy(t, "payments-guard", string(guard)), 20*time.Second)
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("acme-corp", 100))
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("globex", 100))
	denied := mustRefuse(t, dp, payerKey, actionPayment, paymentArgs("mallory-llc", 5000), "denied")
	deniedAt := time.Now()
	if !strings.Contains(denied.Text, "payments-guard/unknown-payee") {
		t.Fatalf("the refusal %q does not name the policy", denied.Text)
	}

	got := hook.Await(t, 2*time.Second, "a signed alert within 2 s of the denial", func(ds []harness.WebhookDelivery) error {
		if len(ds) == 0 {
			return fmt.Errorf("no delivery")
		}
		return nil
	})
	d := got[0]
	t.Logf("alert delivered %s after the denial", d.At.Sub(deniedAt).Round(time.Millisecond))
	if err := verifySignature(d, []byte(signingKey)); err != nil {
		t.Fatal(err)
	}
	var body alertBody
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatalf("alert body %s: %v", d.Body, err)
	}
	if body.Rule != "security-page" || body.ID != d.Header.Get("Portcullis-Alert-Id") || body.Event.Agent != "payer-agent" ||
		body.Event.Target != actionPayment || !slices.Contains(body.Event.Policies, "payments-guard/unknown-payee") ||
		!slices.Contains(body.Event.Tags, "security") || !strings.HasPrefix(body.RecordID, "dp1/") || body.Reason == "" {
		t.Fatalf("alert body %s", d.Body)
	}

	// The audit record the alert names is the denial, naming the policy.
	var rec struct {
		Records []struct {
			Agent    string   `json:"agent"`
			Decision string   `json:"decision"`
			Policies []string `json:"policies"`
			Args     string   `json:"argumentsJson"`
		} `json:"records"`
	}
	harness.GwctlJSON(t, env, &rec, "audit", "query", "--record", body.RecordID, "--timeout", "20s")
	if len(rec.Records) != 1 || rec.Records[0].Decision != "deny" || rec.Records[0].Agent != "payer-agent" ||
		!slices.Equal(rec.Records[0].Policies, []string{"payments-guard/unknown-payee"}) || !strings.Contains(rec.Records[0].Args, "mallory-llc") {
		t.Fatalf("audit record %s: %+v", body.RecordID, rec.Records)
	}

	// A human checks the payee and approves it from the record: the same
	// payment passes once the data plane has the list.
	var approved struct {
		Learning revisioned `json:"learning"`
		Scope    string     `json:"scope"`
		Values   []string   `json:"values"`
	}
	harness.GwctlJSON(t, env, &approved, "valuelist", "approve", "--record", body.RecordID, "--timeout", "20s")
	if approved.Scope != "agent:payer-agent" || !slices.Equal(approved.Values, []string{"mallory-llc"}) {
		t.Fatalf("approved %+v", approved)
	}
	awaitVersion(t, dp, uint64(approved.Learning.Meta.Revision), 20*time.Second)
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("mallory-llc", 5000))

	// A leader failover between the denial and the delivery: the receiver
	// fails until the alert is queued and attempted, the leader is killed,
	// and the next leader delivers it — once.
	hook.SetStatus(http.StatusServiceUnavailable)
	before := len(hook.Deliveries())
	mustRefuse(t, dp, payerKey, actionPayment, paymentArgs("eve-holdings", 9000), "denied")
	failing := hook.Await(t, 20*time.Second, "a first, failing, attempt of the second alert", func(ds []harness.WebhookDelivery) error {
		if len(ds) <= before {
			return fmt.Errorf("%d deliveries", len(ds))
		}
		return nil
	})
	second := failing[before].Header.Get("Portcullis-Alert-Id")
	if second == "" || second == body.ID {
		t.Fatalf("the second alert's id is %q (the first was %q)", second, body.ID)
	}
	victim := g.c.Leader(t, 10*time.Second)
	victim.Kill()
	hook.SetStatus(http.StatusOK)
	t.Logf("killed leader %s with alert %s in the outbox", victim.NodeID, second)
	accepted := func(ds []harness.WebhookDelivery, id string) int {
		n := 0
		for _, d := range ds {
			if d.Header.Get("Portcullis-Alert-Id") == id && d.Status == http.StatusOK {
				n++
			}
		}
		return n
	}
	hook.Await(t, 30*time.Second, "the next leader delivers the alert", func(ds []harness.WebhookDelivery) error {
		if accepted(ds, second) == 0 {
			return fmt.Errorf("not delivered yet (%d deliveries)", len(ds))
		}
		return nil
	})
	survivors := g.c.Env(liveURLs(g.c, victim)...)
	awaitOutboxEmpty(t, survivors)
	ds := hook.Deliveries()
	if n := accepted(ds, second); n != 1 {
		t.Fatalf("alert %s was accepted %d times", second, n)
	}
	if n := accepted(ds, body.ID); n != 1 {
		t.Fatalf("alert %s was accepted %d times", body.ID, n)
	}
	for _, d := range ds[before:] {
		if err := verifySignature(d, []byte(signingKey)); err != nil {
			t.Fatalf("delivery at %s: %v", d.At, err)
		}
	}
}

// awaitOutboxEmpty waits until no alert waits in the outbox: every one
// was sent (and the sending recorded) or given up.
func awaitOutboxEmpty(t *testing.T, env []string) {
	t.Helper()
	harness.Await(t, 20*time.Second, "the outbox is empty", func() error {
		var out struct {
			Alerts []struct {
				Meta struct {
					Name string `json:"name"`
				} `json:"meta"`
			} `json:"alerts"`
		}
		r := harness.Gwctl(t, env, "alert", "list", "-o", "json", "--timeout", "10s")
		if err := r.Err(); err != nil {
			return err
		}
		if err := r.JSON(&out); err != nil {
			return err
		}
		if len(out.Alerts) > 0 {
			return fmt.Errorf("%d alerts queued", len(out.Alerts))
		}
		return nil
	})
}

// auditRecord is the part of a record (gwctl audit query -o json) the lag
// measurement reads.
type auditRecord struct {
	Time            time.Time     `json:"time"`
	Kind            string        `json:"kind"`
	Method          string        `json:"method"`
	ArgumentsJSON   string        `json:"argumentsJson"`
	Decision        string        `json:"decision"`
	SnapshotVersion harness.Int64 `json:"snapshotVersion"`
	Applied         *struct {
		Version harness.Int64 `json:"version"`
	} `json:"applied"`
	Learned *struct {
		Entries []struct {
			Value string `json:"value"`
		} `json:"entries"`
	} `json:"learned"`
}

func auditRecordsOf(t *testing.T, env []string, dataplane string) ([]auditRecord, error) {
	t.Helper()
	r := harness.Gwctl(t, env, "audit", "query", "--dataplane", dataplane, "--all", "--limit", "1000", "-o", "json", "--timeout", "20s")
	if err := r.Err(); err != nil {
		return nil, err
	}
	var out struct {
		Records []auditRecord `json:"records"`
	}
	return out.Records, r.JSON(&out)
}

// learningLag measures, from the audit trail alone, the time from the
// first successful payment to payee (its record's time, on the data
// plane's clock) to the data plane applying the first configuration
// version that holds it (its config/apply record, same clock): the
// control plane's learned record names the Raft index — the config
// version — at which the value was learned.
func learningLag(t *testing.T, g *gateway, dp *harness.Dataplane, payee string) (time.Duration, error) {
	t.Helper()
	var lag time.Duration
	err := harness.Poll(20*time.Second, func() error {
		if l, err := auditUploadLag(dp); err != nil {
			return err
		} else if l > 0 {
			return fmt.Errorf("upload lag %d", l)
		}
		cp, err := auditRecordsOf(t, g.env(), "control-plane")
		if err != nil {
			return err
		}
		var learnedAt uint64
		for _, r := range cp {
			for _, e := range r.learnedEntries() {
				if e == payee && learnedAt == 0 {
					learnedAt = uint64(r.SnapshotVersion)
				}
			}
		}
		recs, err := auditRecordsOf(t, g.env(), dp.Name)
		if err != nil {
			return err
		}
		var called, applied time.Time
		for _, r := range recs {
			if called.IsZero() && r.Decision == "allow" && strings.Contains(r.ArgumentsJSON, `"`+payee+`"`) {
				called = r.Time
			}
			if applied.IsZero() && r.Applied != nil && r.Method == "config/apply" && learnedAt > 0 && uint64(r.Applied.Version) >= learnedAt {
				applied = r.Time
			}
		}
		if learnedAt == 0 || called.IsZero() || applied.IsZero() {
			return fmt.Errorf("learned at %d, called %v, applied %v", learnedAt, called, applied)
		}
		lag = applied.Sub(called)
		return nil
	})
	return lag, err
}

func (r auditRecord) learnedEntries() []string {
	if r.Learned == nil {
		return nil
	}
	var out []string
	for _, e := range r.Learned.Entries {
		out = append(out, e.Value)
	}
	return out
}

// liveURLs lists the API URLs of the cluster's nodes other than down.
func liveURLs(c *harness.Cluster, down *harness.ControlPlane) []string {
	var out []string
	for _, n := range c.Nodes {
		if n != down {
			out = append(out, n.URL)
		}
	}
	return out
}

// TestLearnedListSeededFromHistory: a list seeded from the stored audit
// records holds exactly the payees of the successful calls in each
// agent's scope — none of a denied or a failed call.
func TestLearnedListSeededFromHistory(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	env := g.env()
	payer := g.createAgent(t, "payer-agent", "payments")
	other := g.createAgent(t, "other-payer", "payments")
	const policy = learnPolicy + `@id("never-mallory")
forbid(principal, action == Action::"demo__send_payment", resource) when { context.arguments.to == "mallory-llc" };
`
	awaitVersion(t, dp, g.applyPolicy(t, "payments", policy), 20*time.Second)
	mustCall(t, dp, payer, actionPayment, paymentArgs("acme-corp", 100))
	mustCall(t, dp, payer, actionPayment, paymentArgs("globex", 100))
	mustCall(t, dp, other, actionPayment, paymentArgs("initech", 100))
	mustRefuse(t, dp, payer, actionPayment, paymentArgs("mallory-llc", 100), "denied")
	if c, err := dp.CallTool(t.Context(), payer, actionPayment, paymentArgs("broken-payee", 0)); err != nil || !c.IsError {
		t.Fatalf("a zero payment: %v, isError %v; want the upstream's tool error", err, c.IsError)
	}
	harness.Await(t, 20*time.Second, "the data plane uploaded its records", func() error {
		lag, err := auditUploadLag(dp)
		if err != nil {
			return err
		}
		if lag > 0 {
			return fmt.Errorf("upload lag %d", lag)
		}
		return nil
	})

	g.gwctl(t, "valuelist", "create", "payees")
	r := harness.MustGwctl(t, env, "valuelist", "learn", "payees", "--tool", actionPayment, "--argument", "to", "--scope", "agent", "--from-history", "1h", "--timeout", "30s")
	if !strings.Contains(r.Stdout, "3 values learned in 2 scopes") {
		t.Fatalf("valuelist learn printed %q", r.Stdout)
	}
	sets, _ := learnedSets(t, env, "payees")
	want := map[string][]string{"agent:payer-agent": {"acme-corp", "globex"}, "agent:other-payer": {"initech"}}
	if fmt.Sprint(sets) != fmt.Sprint(want) {
		t.Fatalf("seeded %v, want %v", sets, want)
	}
}

// TestLearnedAndPagedOnEtcd: with the control plane on etcd, the audit
// consumers and alert delivery run on the node etcd's election picks: a
// list learns a payee, a payment to a stranger is denied and paged with a
// signed alert, and after the elected node is killed the next one pages
// the next denial and applies the operator's approval.
func TestLearnedAndPagedOnEtcd(t *testing.T) {
	ec := harness.StartEtcd(t, 1)
	g := startGatewayOn(t, harness.ClusterOptions{Nodes: 2, Etcd: ec}, "dp1")
	dp := g.dps[0]
	payerKey := g.createAgent(t, "payer-agent", "payments")

	hook := harness.StartWebhook(t)
	signingKey := "whsec_" + randomHex(t, 16)
	g.gwctl(t, "secret", "set", "alert-signing-key", "--hosts", "127.0.0.1", "--from-file", g.writeFile(t, "alert.key", signingKey))
	g.gwctl(t, "alert", "rule", "create", "security-page", "--on-deny", "security", "--url", hook.URL, "--signing-secret", "alert-signing-key")
	g.gwctl(t, "valuelist", "create", "payees")
	g.gwctl(t, "valuelist", "learn", "payees", "--tool", actionPayment, "--argument", "to", "--scope", "agent")
	awaitVersion(t, dp, g.applyPolicy(t, "payments", learnPolicy), 20*time.Second)
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("acme-corp", 100))
	var revision uint64
	harness.Await(t, 20*time.Second, "the list learned the payee", func() error {
		sets, rev := learnedSets(t, g.env(), "payees")
		if got := sets["agent:payer-agent"]; !slices.Equal(got, []string{"acme-corp"}) {
			return fmt.Errorf("learned %v", sets)
		}
		revision = rev
		return nil
	})
	awaitVersion(t, dp, revision, 20*time.Second)

	guard, err := os.ReadFile("../../examples/policies/learned-payees.cedar")
	if err != nil {
		t.Fatal(err)
	}
	awaitVersion(t, dp, g.applyPolicy(t, "payments-guard", string(guard)), 20*time.Second)
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("acme-corp", 100))
	// paged waits for an accepted, correctly signed alert of a denial by
	// the guard and returns the denied call's record id.
	paged := func(what string, after int) string {
		t.Helper()
		ds := hook.Await(t, 20*time.Second, what, func(ds []harness.WebhookDelivery) error {
			if len(ds) <= after {
				return fmt.Errorf("%d deliveries", len(ds))
			}
			return nil
		})
		if len(ds) != after+1 {
			t.Fatalf("%s: %d deliveries, want %d", what, len(ds), after+1)
		}
		d := ds[after]
		if err := verifySignature(d, []byte(signingKey)); err != nil {
			t.Fatal(err)
		}
		var body alertBody
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatalf("alert body %s: %v", d.Body, err)
		}
		if body.Rule != "security-page" || !slices.Contains(body.Event.Policies, "payments-guard/unknown-payee") || !strings.HasPrefix(body.RecordID, "dp1/") {
			t.Fatalf("%s: alert body %s", what, d.Body)
		}
		return body.RecordID
	}
	mustRefuse(t, dp, payerKey, actionPayment, paymentArgs("mallory-llc", 5000), "denied")
	paged("the first denial's alert", 0)
	// Its delivery recorded, so that no node sends it again.
	awaitOutboxEmpty(t, g.env())

	victim := g.c.Leader(t, 10*time.Second)
	victim.Kill()
	survivors := g.c.Env(liveURLs(g.c, victim)...)
	t.Logf("killed the elected node %s", victim.NodeID)
	mustRefuse(t, dp, payerKey, actionPayment, paymentArgs("eve-holdings", 9000), "denied")
	record := paged("the next elected node pages the second denial", 1)
	var approved struct {
		Learning revisioned `json:"learning"`
	}
	harness.GwctlJSON(t, survivors, &approved, "valuelist", "approve", "--record", record, "--timeout", "20s")
	awaitVersion(t, dp, uint64(approved.Learning.Meta.Revision), 20*time.Second)
	mustCall(t, dp, payerKey, actionPayment, paymentArgs("eve-holdings", 9000))
}
