package auditconsumer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore/rafttest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*NetworkTransport).listen"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// records makes count plain call records.
func records(count int) []*auditv1.Record {
	out := make([]*auditv1.Record, count)
	for i := range out {
		out[i] = &auditv1.Record{Agent: "a", Tool: "t", Outcome: "ok"}
	}
	return out
}

// seen is a consumer that remembers every record it was handed.
type seen struct {
	name string
	mu   sync.Mutex
	got  map[string]int
}

func (s *seen) Name() string              { return s.name }
func (s *seen) Pending(*state.State) bool { return false }
func (s *seen) Consume(_ context.Context, b *auditconsumer.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range b.Records {
		if r.GetSequence() < b.Cursor[r.GetDataplane()] {
			return fmt.Errorf("handed %s/%d, below the cursor %d", r.GetDataplane(), r.GetSequence(), b.Cursor[r.GetDataplane()])
		}
		s.got[fmt.Sprintf("%s/%d", r.GetDataplane(), r.GetSequence())]++
	}
	return nil
}

func cursor(n *raftstore.Node, name string) *configv1.AuditCursor {
	r, _ := n.LocalState().Get(resource.AuditCursor, name)
	return r.GetAuditCursor()
}

// TestConsumersNeverSkipNorDoubleCount runs two leaders' runners at once
// over one store (a deposed leader that has not noticed yet, and the new
// one), stops one midway and starts a third from nothing but the
// replicated cursor, while records keep arriving from two data planes.
// The cursor must end at every chain's end, having counted each record
// exactly once.
func TestConsumersNeverSkipNorDoubleCount(t *testing.T) {
	n, audit := rafttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	consumer := &seen{name: "count", got: map[string]int{}}
	run := func(ctx context.Context) (stop func()) {
		ctx, c := context.WithCancel(ctx)
		r := auditconsumer.New(auditconsumer.Config{Store: n, Audit: audit, NodeID: "n1", Consumers: []auditconsumer.Consumer{consumer},
			Interval: 5 * time.Millisecond, BatchSize: 7})
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx)
		}()
		return func() { c(); <-done }
	}
	stopA := run(ctx)
	stopB := run(ctx)
	// The cursor starts at the end of the store: wait for it before the
	// first upload, so every record counts.
	for cursor(n, "count") == nil {
		select {
		case <-ctx.Done():
			t.Fatal("no cursor")
		case <-n.Changed():
		}
	}
	ups := []*rafttest.Uploader{{Dataplane: "dp1"}, {Dataplane: "dp2"}}
	total := 0
	for i := range 30 {
		for _, u := range ups {
			u.Upload(t, n, records(1+i%4)...)
			total += 1 + i%4
		}
		if i == 10 {
			stopA()
		}
	}
	stopC := run(ctx)
	defer stopC()
	defer stopB()
	want := audit.Marks()
	for {
		c := cursor(n, "count")
		done := true
		for dp, next := range want {
			have := uint64(1)
			for _, m := range c.GetMarks() {
				if m.GetDataplane() == dp {
					have = m.GetNext()
				}
			}
			done = done && have == next
		}
		if done {
			if c.GetRecords() != uint64(total) {
				t.Fatalf("the cursor counted %d records, %d were stored", c.GetRecords(), total)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the cursor %v never reached %v", c.GetMarks(), want)
		case <-n.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
	consumer.mu.Lock()
	defer consumer.mu.Unlock()
	if len(consumer.got) != total {
		t.Fatalf("the consumer was handed %d distinct records, %d were stored", len(consumer.got), total)
	}
}

// TestConsumerStartsAtTheEndOfTheStore: a consumer added to a cluster
// with history does not consume what was stored before it existed.
func TestConsumerStartsAtTheEndOfTheStore(t *testing.T) {
	n, audit := rafttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := &rafttest.Uploader{Dataplane: "dp1"}
	u.Upload(t, n, records(5)...)
	consumer := &seen{name: "late", got: map[string]int{}}
	r := auditconsumer.New(auditconsumer.Config{Store: n, Audit: audit, NodeID: "n1", Consumers: []auditconsumer.Consumer{consumer}, Interval: 5 * time.Millisecond})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(rctx)
	}()
	defer func() { stop(); <-done }()
	for cursor(n, "late") == nil {
		select {
		case <-ctx.Done():
			t.Fatal("no cursor")
		case <-n.Changed():
		}
	}
	u.Upload(t, n, records(2)...)
	for cursor(n, "late").GetRecords() < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("cursor %v", cursor(n, "late"))
		case <-n.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
	consumer.mu.Lock()
	defer consumer.mu.Unlock()
	if len(consumer.got) != 2 || consumer.got["dp1/6"] != 1 || consumer.got["dp1/7"] != 1 {
		t.Fatalf("consumed %v, want dp1/6 and dp1/7 only", consumer.got)
	}
}

// picky derives too much from more than two records at once.
type picky struct{ seen }

func (p *picky) Consume(ctx context.Context, b *auditconsumer.Batch) error {
	if len(b.Records) > 2 {
		return auditconsumer.ErrBatchTooLarge
	}
	return p.seen.Consume(ctx, b)
}

// TestBatchTooLargeReadsFewerRecords: a batch that derives more than a
// command may carry is read again in smaller batches; nothing is skipped.
func TestBatchTooLargeReadsFewerRecords(t *testing.T) {
	n, audit := rafttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	consumer := &picky{seen{name: "picky", got: map[string]int{}}}
	r := auditconsumer.New(auditconsumer.Config{Store: n, Audit: audit, NodeID: "n1", Consumers: []auditconsumer.Consumer{consumer}, Interval: 5 * time.Millisecond})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(rctx)
	}()
	defer func() { stop(); <-done }()
	for cursor(n, "picky") == nil {
		select {
		case <-ctx.Done():
			t.Fatal("no cursor")
		case <-n.Changed():
		}
	}
	(&rafttest.Uploader{Dataplane: "dp1"}).Upload(t, n, records(9)...)
	for cursor(n, "picky").GetRecords() < 9 {
		select {
		case <-ctx.Done():
			t.Fatalf("cursor %v", cursor(n, "picky"))
		case <-n.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
	consumer.mu.Lock()
	defer consumer.mu.Unlock()
	if len(consumer.got) != 9 {
		t.Fatalf("consumed %v", consumer.got)
	}
}
