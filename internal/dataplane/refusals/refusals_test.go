package refusals_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/refusals"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

type memWriter struct {
	mu      sync.Mutex
	records []*auditv1.Record
	fail    bool
}

func (w *memWriter) Write(_ context.Context, r *auditv1.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return errors.New("disk full")
	}
	w.records = append(w.records, r)
	return nil
}

func TestNetwork(t *testing.T) {
	for _, tc := range []struct {
		name, addr, want string
	}{
		{"ipv4", "203.0.113.77", "203.0.113.0/24"},
		{"ipv4-mapped", "::ffff:203.0.113.77", "203.0.113.0/24"},
		{"ipv6", "2001:db8:1234:5678::1", "2001:db8:1234::/48"},
		{"loopback", "127.0.0.1", "127.0.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := refusals.Network(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Fatalf("Network(%s) = %s, want %s", tc.addr, got, tc.want)
			}
		})
	}
	if got := refusals.Network(netip.Addr{}); got != "unknown" {
		t.Fatalf("Network(invalid) = %s, want unknown", got)
	}
}

func TestFlushWritesOneSummaryPerNetworkAndReason(t *testing.T) {
	w := &memWriter{}
	now := time.Unix(1_800_000_000, 0)
	var counted int
	rec := refusals.New(refusals.Options{Writer: w, Dataplane: "dp1", Now: func() time.Time { return now }, Count: func(string) { counted++ }})
	for i := range 1000 {
		now = now.Add(time.Millisecond)
		rec.Refused(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), "unauthenticated")
	}
	rec.Refused(netip.MustParseAddr("192.0.2.1"), "unauthenticated")
	rec.Refused(netip.MustParseAddr("192.0.2.1"), "no_config")
	rec.Flush(context.Background())

	if counted != 1002 {
		t.Errorf("counted %d refusals, want 1002", counted)
	}
	if len(w.records) != 3 {
		t.Fatalf("%d records, want 3 (one per network and reason): %v", len(w.records), w.records)
	}
	first := w.records[0] // the busiest comes first
	s := first.GetRefusalSummary()
	if first.GetKind() != auditv1.EventKind_EVENT_KIND_REFUSAL_SUMMARY || s == nil {
		t.Fatalf("record kind %v, detail %v; want a refusal summary", first.GetKind(), first.GetDetail())
	}
	if s.GetSourceNetwork() != "198.51.100.0/24" || s.GetReason() != "unauthenticated" || s.GetCount() != 1000 {
		t.Errorf("summary %v, want 1000 unauthenticated from 198.51.100.0/24", s)
	}
	if !s.GetLast().AsTime().After(s.GetFirst().AsTime()) || first.GetDataplane() != "dp1" || first.GetAgent() != "" {
		t.Errorf("record %v: want first < last, data plane dp1 and no agent", first)
	}

	// The next interval starts empty.
	rec.Flush(context.Background())
	if len(w.records) != 3 {
		t.Fatalf("an empty interval wrote %d more records", len(w.records)-3)
	}
}

func TestMemoryIsBoundedByMaxKeys(t *testing.T) {
	w := &memWriter{}
	rec := refusals.New(refusals.Options{Writer: w, MaxKeys: 10})
	for i := range 5000 {
		rec.Refused(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), "unauthenticated")
	}
	rec.Flush(context.Background())
	if len(w.records) != 11 {
		t.Fatalf("%d records, want 10 networks plus %q", len(w.records), refusals.OtherNetwork)
	}
	var total uint64
	var other bool
	for _, r := range w.records {
		total += r.GetRefusalSummary().GetCount()
		other = other || r.GetRefusalSummary().GetSourceNetwork() == refusals.OtherNetwork
	}
	if total != 5000 || !other {
		t.Fatalf("total %d (want 5000), other network present: %v", total, other)
	}
}

func TestRunFlushesOnStop(t *testing.T) {
	w := &memWriter{}
	rec := refusals.New(refusals.Options{Writer: w, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rec.Run(ctx); close(done) }()
	rec.Refused(netip.MustParseAddr("192.0.2.9"), "unauthenticated")
	cancel()
	<-done
	if len(w.records) != 1 {
		t.Fatalf("%d records after stop, want the last summary", len(w.records))
	}
}

func TestFailedWriteIsDroppedNotRetried(t *testing.T) {
	w := &memWriter{fail: true}
	rec := refusals.New(refusals.Options{Writer: w})
	rec.Refused(netip.MustParseAddr("192.0.2.9"), "unauthenticated")
	rec.Flush(context.Background())
	w.fail = false
	rec.Flush(context.Background())
	if len(w.records) != 0 {
		t.Fatalf("%d records; a lost summary must not come back in the next interval", len(w.records))
	}
}
