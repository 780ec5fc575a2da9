package audit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
)

// gatedFile counts fsyncs and holds each one until the test lets it go.
type gatedFile struct {
	audit.File
	syncs *atomic.Int32
	gate  chan struct{}
}

func (f gatedFile) Sync() error {
	f.syncs.Add(1)
	<-f.gate
	return f.File.Sync()
}

// TestGroupCommitSharesOneFsync holds the first Write's fsync while 50
// more Writes arrive: they must all be committed by one more fsync, each
// durable when its Write returns.
func TestGroupCommitSharesOneFsync(t *testing.T) {
	var syncs atomic.Int32
	gate := make(chan struct{})
	opts := audit.Options{Dir: t.TempDir()}
	audit.WrapFiles(&opts, func(f audit.File) audit.File { return gatedFile{File: f, syncs: &syncs, gate: gate} })
	l := open(t, opts)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.Write(context.Background(), record(0)); err != nil {
			t.Errorf("first Write: %v", err)
		}
	})
	await(t, "the first Write's fsync", func() bool { return syncs.Load() == 1 })
	const more = 50
	for i := range more {
		wg.Go(func() {
			r := record(i + 1)
			if err := l.Write(context.Background(), r); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
			if d := l.Durable(); d < r.Sequence {
				t.Errorf("Write of record %d returned with only %d durable", r.Sequence, d)
			}
		})
	}
	await(t, "50 queued Writes", func() bool { return l.Queued() == more })
	close(gate)
	wg.Wait()
	if got := syncs.Load(); got != 2 {
		t.Errorf("%d fsyncs for 51 Writes, 50 of them queued behind the first: want 2", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, opts.Dir, more+1)
}

// TestLoneWriteCommitsItself: a Write with no other in progress is durable
// when it returns, one fsync each.
func TestLoneWriteCommitsItself(t *testing.T) {
	var syncs atomic.Int32
	gate := make(chan struct{})
	close(gate)
	opts := audit.Options{Dir: t.TempDir()}
	audit.WrapFiles(&opts, func(f audit.File) audit.File { return gatedFile{File: f, syncs: &syncs, gate: gate} })
	l := open(t, opts)
	for i := range 5 {
		r := record(i)
		if err := l.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if l.Durable() != r.Sequence || syncs.Load() != int32(i+1) {
			t.Fatalf("after Write %d: durable %d, %d fsyncs; want %d and %d", i+1, l.Durable(), syncs.Load(), r.Sequence, i+1)
		}
	}
}

func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
