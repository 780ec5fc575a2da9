package alertsend_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/controlplane/alertsend"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore/rafttest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	"github.com/portcullis-gw/portcullis/internal/egress"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*NetworkTransport).listen"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

func TestSignAndVerify(t *testing.T) {
	key := []byte("k3y")
	body := []byte(`{"id":"a1"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := alertsend.Sign(key, now, body)
	tests := []struct {
		name   string
		key    []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", key, sig, body, now, nil},
		{"valid a minute later", key, sig, body, now.Add(time.Minute), nil},
		{"other key", []byte("other"), sig, body, now, alertsend.ErrBadSignature},
		{"changed body", key, sig, []byte(`{"id":"a2"}`), now, alertsend.ErrBadSignature},
		{"changed timestamp", key, strings.Replace(sig, "t=1800000000", "t=1800000001", 1), body, now, alertsend.ErrBadSignature},
		{"replayed later", key, sig, body, now.Add(time.Hour), alertsend.ErrStale},
		{"malformed", key, "v1=zz", body, now, alertsend.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := alertsend.Verify(tt.key, tt.header, tt.body, tt.now, alertsend.DefaultTolerance)
			if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func alert() *configv1.Alert {
	return statetest.Alert("a0f00d", "sec", "dp1/42")
}

func TestBodies(t *testing.T) {
	t.Run("generic", func(t *testing.T) {
		b, err := alertsend.Body(alert(), configv1.AlertFormat_ALERT_FORMAT_GENERIC, "", "c1", nil)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		ev, _ := got["event"].(map[string]any)
		if got["id"] != "a0f00d" || got["record_id"] != "dp1/42" || got["rule"] != "sec" || got["reason"] != "fixture alert" ||
			ev["kind"] != "policy_deny" || ev["agent"] != "billing-bot" || ev["target"] != "pay__send" {
			t.Fatalf("body %s", b)
		}
	})
	t.Run("pagerduty", func(t *testing.T) {
		b, err := alertsend.Body(alert(), configv1.AlertFormat_ALERT_FORMAT_PAGERDUTY, "", "c1", []byte("R0UTING"))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			RoutingKey  string `json:"routing_key"`
			EventAction string `json:"event_action"`
			DedupKey    string `json:"dedup_key"`
			Payload     struct {
				Summary, Source, Severity string
				CustomDetails             map[string]any `json:"custom_details"`
			}
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.RoutingKey != "R0UTING" || got.EventAction != "trigger" || got.DedupKey != "a0f00d" || got.Payload.Summary != "fixture alert" ||
			got.Payload.Severity != "critical" || got.Payload.Source != "portcullis/c1" || got.Payload.CustomDetails["record_id"] != "dp1/42" {
			t.Fatalf("body %s", b)
		}
	})
}

// TestSenderRules: 2xx is sent; anything else fails without quoting the
// response body; a redirect is not followed; the egress policy is applied
// to the address dialed.
func TestSenderRules(t *testing.T) {
	var followed sync.Mutex
	hit := false
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		followed.Lock()
		hit = true
		followed.Unlock()
	}))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusAccepted)
		case "/redirect":
			http.Redirect(w, r, target.URL, http.StatusFound)
		default:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "STACK TRACE with secret=hunter2")
		}
	}))
	defer srv.Close()
	s := alertsend.NewSender(egress.Policy{})
	ctx := context.Background()
	if a := s.Send(ctx, srv.URL+"/ok", []byte("{}"), nil); a.Err != nil || a.Status != http.StatusAccepted {
		t.Fatalf("2xx: %+v", a)
	}
	a := s.Send(ctx, srv.URL+"/fail", []byte("{}"), nil)
	if a.Err == nil || a.Status != 500 || strings.Contains(a.Err.Error(), "hunter2") || strings.Contains(a.Err.Error(), "STACK") {
		t.Fatalf("500: %+v", a)
	}
	a = s.Send(ctx, srv.URL+"/redirect", []byte("{}"), nil)
	if a.Err == nil || !strings.Contains(a.Err.Error(), "redirects are not followed") {
		t.Fatalf("redirect: %+v", a)
	}
	followed.Lock()
	if hit {
		t.Fatal("the redirect was followed")
	}
	followed.Unlock()
	deny := alertsend.NewSender(egress.Policy{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	a = deny.Send(ctx, srv.URL+"/ok", []byte("{}"), nil)
	if a.Err == nil || !strings.Contains(a.Err.Error(), "egress policy") || strings.Contains(a.Err.Error(), srv.URL) {
		t.Fatalf("egress: %+v", a)
	}
}

// receiver is a webhook that answers with the statuses it is given, in
// turn (the last one from then on), and keeps what it got.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []delivery
	srv      *httptest.Server
}

type delivery struct {
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := r.statuses[min(len(r.got), len(r.statuses)-1)]
		r.got = append(r.got, delivery{header: req.Header.Clone(), body: b, status: status})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// setup stores, in a real Raft node, a signing secret and a routing key
// bound to 127.0.0.1 and a rule sending to url in format.
func setup(t *testing.T, url string, format configv1.AlertFormat) (*raftstore.Node, *auditstore.Store, *seal.Sealer, []byte) {
	t.Helper()
	n, audit := rafttest.Start(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	signing := []byte("whsec-test-key")
	secret := func(name string, value []byte) *configv1.Secret {
		c, err := sealer.Seal(value, resource.SecretAAD(name))
		if err != nil {
			t.Fatal(err)
		}
		return &configv1.Secret{Meta: &configv1.ResourceMeta{Name: name}, Ciphertext: c, Size: int64(len(value)), Hosts: []string{"127.0.0.1"}}
	}
	rule := statetest.AlertRule("sec", "security", url, "hook-key")
	rule.Webhook.Format = format
	if format == configv1.AlertFormat_ALERT_FORMAT_PAGERDUTY {
		rule.Webhook.RoutingKeySecret = "pd-key"
	}
	rafttest.MustApply(t, n,
		statetest.Create(secret("hook-key", signing)),
		statetest.Create(secret("pd-key", []byte("R0UTING"))),
		statetest.Create(rule),
		statetest.Consume("alert", 0, nil),
	)
	return n, audit, sealer, signing
}

func queue(t *testing.T, n *raftstore.Node, after uint64, a *configv1.Alert) {
	t.Helper()
	c := statetest.Consume("alert", after, nil)
	c.GetConsumeAudit().Alerts = []*configv1.Alert{a}
	c.Time = nil
	rafttest.MustApply(t, n, c)
}

func deliverer(n *raftstore.Node, sealer *seal.Sealer, maxAge time.Duration) *alertsend.Deliverer {
	return alertsend.New(alertsend.Config{
		Store: n, Sealer: sealer, Sender: alertsend.NewSender(egress.Policy{}), NodeID: "n1",
		MaxAge: maxAge, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
	})
}

// run runs d until cond holds of the outbox and the audit store.
func run(t *testing.T, d *alertsend.Deliverer, n *raftstore.Node, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met")
		case <-n.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// alertRecords are the control plane's audit records of alerts.
func alertRecords(t *testing.T, audit *auditstore.Store) []*auditv1.AlertDetail {
	t.Helper()
	recs, _, err := audit.Query(auditstore.Filter{DP: auditstore.ControlPlane}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*auditv1.AlertDetail
	for _, r := range recs {
		if a := r.GetAlert(); a != nil {
			out = append(out, a)
		}
	}
	return out
}

// TestDeliverySignsRetriesAndAudits: a failing receiver is retried with
// backoff, each attempt counted in the outbox; the alert that gets
// through is signed over timestamp and body, carries its id, leaves the
// outbox, and is audited as sent.
func TestDeliverySignsRetriesAndAudits(t *testing.T) {
	rc := newReceiver(t, 503, 200)
	n, audit, sealer, signing := setup(t, rc.srv.URL+"/hook", configv1.AlertFormat_ALERT_FORMAT_GENERIC)
	queue(t, n, 1, alert())
	run(t, deliverer(n, sealer, time.Hour), n, func() bool { return len(alertRecords(t, audit)) == 1 })
	got := rc.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	for _, d := range got {
		if err := alertsend.Verify(signing, d.header.Get(alertsend.HeaderSignature), d.body, time.Now(), time.Minute); err != nil {
			t.Fatalf("signature: %v", err)
		}
		if d.header.Get(alertsend.HeaderAlertID) != "a0f00d" || string(d.body) != string(got[0].body) {
			t.Fatalf("delivery %v %s", d.header, d.body)
		}
	}
	if _, ok := n.LocalState().Get(resource.Alert, "a0f00d"); ok {
		t.Fatal("the alert is still in the outbox")
	}
	if a := alertRecords(t, audit)[0]; a.GetOutcome() != "sent" || a.GetAttempts() != 2 || a.GetStatusCode() != 200 || a.GetRecordId() != "dp1/42" {
		t.Fatalf("audited %v", a)
	}
}

// TestDeliveryGivesUp: past its maximum age an alert is given up and the
// failure audited, without the response body.
func TestDeliveryGivesUp(t *testing.T) {
	rc := newReceiver(t, 500)
	n, audit, sealer, _ := setup(t, rc.srv.URL, configv1.AlertFormat_ALERT_FORMAT_GENERIC)
	queue(t, n, 1, alert())
	run(t, deliverer(n, sealer, 100*time.Millisecond), n, func() bool { return len(alertRecords(t, audit)) == 1 })
	a := alertRecords(t, audit)[0]
	if a.GetOutcome() != "gave_up" || a.GetAttempts() < 1 || !strings.Contains(a.GetError(), "500") {
		t.Fatalf("audited %v", a)
	}
	if len(rc.deliveries()) != int(a.GetAttempts()) {
		t.Fatalf("%d deliveries, %d attempts recorded", len(rc.deliveries()), a.GetAttempts())
	}
}

// TestDeliveryOfADeletedRulesAlert: an alert whose rule is gone is given
// up without sending.
func TestDeliveryOfADeletedRulesAlert(t *testing.T) {
	rc := newReceiver(t, 200)
	n, audit, sealer, _ := setup(t, rc.srv.URL, configv1.AlertFormat_ALERT_FORMAT_GENERIC)
	queue(t, n, 1, alert())
	rafttest.MustApply(t, n, statetest.Delete(resource.AlertRule, "sec"))
	run(t, deliverer(n, sealer, time.Hour), n, func() bool { return len(alertRecords(t, audit)) == 1 })
	if a := alertRecords(t, audit)[0]; a.GetOutcome() != "gave_up" || !strings.Contains(a.GetError(), "deleted") || len(rc.deliveries()) != 0 {
		t.Fatalf("audited %v after %d deliveries", a, len(rc.deliveries()))
	}
}

// TestPagerDutyDelivery sends the PagerDuty shape with the routing key.
func TestPagerDutyDelivery(t *testing.T) {
	rc := newReceiver(t, 202)
	n, audit, sealer, _ := setup(t, rc.srv.URL+"/v2/enqueue", configv1.AlertFormat_ALERT_FORMAT_PAGERDUTY)
	queue(t, n, 1, alert())
	run(t, deliverer(n, sealer, time.Hour), n, func() bool { return len(alertRecords(t, audit)) == 1 })
	var body struct {
		RoutingKey string `json:"routing_key"`
		DedupKey   string `json:"dedup_key"`
	}
	if err := json.Unmarshal(rc.deliveries()[0].body, &body); err != nil || body.RoutingKey != "R0UTING" || body.DedupKey != "a0f00d" {
		t.Fatalf("body %s (%v)", rc.deliveries()[0].body, err)
	}
}
