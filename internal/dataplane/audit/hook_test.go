package audit_test

import (
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// TestOnCommit: the export hook sees every committed record once, in
// sequence order, sealed (sequence and hash set), in both sync modes.
func TestOnCommit(t *testing.T) {
	for _, async := range []bool{false, true} {
		var mu sync.Mutex
		var seen []*auditv1.Record
		l := open(t, audit.Options{Dir: t.TempDir(), Async: async, OnCommit: func(r *auditv1.Record) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
		}})
		write(t, l, 50)
		mu.Lock()
		if len(seen) != 50 {
			t.Fatalf("async=%v: hook saw %d records, want 50", async, len(seen))
		}
		for i, r := range seen {
			if r.GetSequence() != uint64(i+1) || len(r.GetHash()) != 32 {
				t.Fatalf("async=%v: record %d has sequence %d, hash %x", async, i, r.GetSequence(), r.GetHash())
			}
		}
		mu.Unlock()
	}
}
