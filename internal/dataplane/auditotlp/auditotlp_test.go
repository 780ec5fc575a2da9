package auditotlp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditotlp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/auditotlp/otlptest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

func record(seq uint64) *auditv1.Record {
	return &auditv1.Record{
		Time: timestamppb.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)), Dataplane: "dp-1", Sequence: seq,
		Agent: "ops-agent", User: "okta/alice", Protocol: "mcp", Method: "tools/call", Upstream: "weather",
		Tool: "weather__get_weather", TargetOwn: "get_weather", Decision: "allow", Policies: []string{"p/allow", "p/other"}, Outcome: "ok", Mode: "normal",
		Latency: durationpb.New(12 * time.Millisecond), ArgumentsJson: `{"city":"Oslo","password":"[REDACTED]"}`,
		ResponseBytes: 321, Hash: []byte{0xab, 0xcd}, PrevHash: []byte{0x01},
	}
}

func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExportsRecordsAsLogRecords(t *testing.T) {
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	e, err := auditotlp.New(auditotlp.Options{Endpoint: rcv.URL(), Dataplane: "dp-1", BatchSize: 10, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		e.Enqueue(record(uint64(i + 1)))
	}
	await(t, "25 records received", func() bool { return len(rcv.Records()) == 25 })
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Exported != 25 || st.Dropped != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := rcv.Requests(); n < 3 {
		t.Errorf("%d requests for 25 records in batches of 10", n)
	}
	lr := rcv.Records()[0]
	attrs := otlptest.Attributes(lr)
	want := map[string]string{
		"portcullis.audit.dataplane": "dp-1", "portcullis.audit.sequence": "1", "portcullis.audit.agent": "ops-agent",
		"portcullis.audit.user": "okta/alice", "portcullis.audit.tool": "weather__get_weather", "portcullis.audit.target_own": "get_weather", "portcullis.audit.decision": "allow",
		"portcullis.audit.outcome": "ok", "portcullis.audit.policies": "p/allow,p/other", "portcullis.audit.latency_ms": "12",
		"portcullis.audit.response_bytes": "321", "portcullis.audit.hash": "abcd", "portcullis.audit.prev_hash": "01",
		"portcullis.audit.arguments_json": `{"city":"Oslo","password":"[REDACTED]"}`,
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
	if got := lr.GetBody().GetStringValue(); got != "mcp tools/call weather__get_weather by ops-agent for okta/alice: ok (allow)" {
		t.Errorf("body %q", got)
	}
	if lr.GetTimeUnixNano() != uint64(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()) || lr.GetSeverityText() != "ok" {
		t.Errorf("time %d, severity %q", lr.GetTimeUnixNano(), lr.GetSeverityText())
	}
	var instance string
	for _, kv := range rcv.ResourceLogs()[0].GetResource().GetAttributes() {
		if kv.GetKey() == "service.instance.id" {
			instance = kv.GetValue().GetStringValue()
		}
	}
	if instance != "dp-1" {
		t.Errorf("service.instance.id %q", instance)
	}
}

// TestDropsWhenBehind: a collector that does not answer never blocks
// Enqueue; what does not fit the queue is dropped and counted, a batch
// that times out is counted as failed, and every record is accounted for.
func TestDropsWhenBehind(t *testing.T) {
	block := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer stuck.Close()
	e, err := auditotlp.New(auditotlp.Options{Endpoint: stuck.URL, Queue: 4, BatchSize: 2, Interval: time.Millisecond, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 1000 {
		e.Enqueue(record(uint64(i + 1)))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("1000 Enqueue calls took %v", d)
	}
	if st := e.Stats(); st.Dropped < 1000-4-2 {
		t.Fatalf("stats %+v: want all but the queue and one batch dropped", st)
	}
	await(t, "a stuck batch counted as failed", func() bool { return e.Stats().Failed > 0 })
	close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.Close(ctx)
	if st := e.Stats(); st.Exported+st.Dropped+st.Failed != 1000 {
		t.Fatalf("stats %+v do not add up to 1000", st)
	}
}

// TestRefusedBatchCounted: a collector's error answer counts the batch
// as failed.
func TestRefusedBatchCounted(t *testing.T) {
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	rcv.FailWith(http.StatusBadRequest)
	e, err := auditotlp.New(auditotlp.Options{Endpoint: rcv.URL() + "/v1/logs", Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.Enqueue(record(1))
	await(t, "the refused record counted", func() bool { return e.Stats().Failed == 1 })
	_ = e.Close(context.Background())
}

func TestNewRejectsBadEndpoint(t *testing.T) {
	for _, u := range []string{"", "collector:4318", "ftp://x/v1/logs"} {
		if _, err := auditotlp.New(auditotlp.Options{Endpoint: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
