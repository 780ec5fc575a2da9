package auditstore_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

func ids(recs []*auditv1.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%s/%d", r.GetDataplane(), r.GetSequence())
	}
	return out
}

// interleaved stores dp1 1..6 and dp2 1..4 in small segments, alternating
// batches, and returns the order the store holds them in.
func interleaved(t *testing.T, s *auditstore.Store) []string {
	t.Helper()
	a := chain(t, "dp1", 1, 6, auditchain.Zero, t0)
	b := chain(t, "dp2", 1, 4, auditchain.Zero, t0)
	var order []string
	for i := 0; i < 3; i++ {
		for _, batch := range [][]*auditv1.Record{a[2*i : 2*i+2], b[min(2*i, 4):min(2*i+2, 4)]} {
			if len(batch) == 0 {
				continue
			}
			if _, err := s.Append(batch[0].GetDataplane(), batch); err != nil {
				t.Fatal(err)
			}
			order = append(order, ids(batch)...)
		}
	}
	return order
}

// TestReadAfterFollowsTheCursor: a reader gets exactly the records at or
// after its cursor's next sequence of their chain, in storage order,
// wherever its position hint says to start, and a chain the cursor does
// not name counts from 1.
func TestReadAfterFollowsTheCursor(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, auditstore.Options{SegmentSize: 300})
	order := interleaved(t, s)
	if segs, _ := os.ReadDir(dir); len(segs) < 3 {
		t.Fatalf("the records fill %d files; the test needs several segments", len(segs))
	}
	after := func(next map[string]uint64) []string {
		var out []string
		for _, id := range order {
			dp, num, _ := strings.Cut(id, "/")
			seq, _ := strconv.ParseUint(num, 10, 64)
			n, ok := next[dp]
			if !ok {
				n = 1
			}
			if seq >= n {
				out = append(out, id)
			}
		}
		return out
	}
	tests := []struct {
		name string
		next map[string]uint64
	}{
		{"from the start", map[string]uint64{}},
		{"past part of each chain", map[string]uint64{"dp1": 4, "dp2": 2}},
		{"one chain consumed", map[string]uint64{"dp1": 7}},
		{"everything consumed", map[string]uint64{"dp1": 7, "dp2": 5}},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 3, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				var got []string
				next := map[string]uint64{}
				for k, v := range tt.next {
					next[k] = v
				}
				var pos auditstore.Position
				for i := 0; i < 20; i++ {
					recs, p, err := s.ReadAfter(next, pos, limit)
					if err != nil {
						t.Fatal(err)
					}
					if len(recs) > limit {
						t.Fatalf("%d records, limit %d", len(recs), limit)
					}
					for _, r := range recs {
						next[r.GetDataplane()] = r.GetSequence() + 1
					}
					got = append(got, ids(recs)...)
					// Every other read forgets its position: the cursor
					// alone must find where to go on (a new leader).
					if i%2 == 0 {
						pos = p
					} else {
						pos = auditstore.Position{}
					}
					if len(recs) == 0 {
						break
					}
				}
				if want := after(tt.next); !slices.Equal(got, want) {
					t.Fatalf("read %v, want %v", got, want)
				}
			})
		}
	}
}

// TestReadAfterSeesNewRecordsAndSignals: records appended after a read
// are read next from the returned position, and Appended signals them.
func TestReadAfterSeesNewRecordsAndSignals(t *testing.T) {
	s := open(t, t.TempDir(), auditstore.Options{})
	recs := chain(t, "dp1", 1, 4, auditchain.Zero, t0)
	if _, err := s.Append("dp1", recs[:2]); err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{"dp1": 1}
	got, pos, err := s.ReadAfter(next, auditstore.Position{}, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("read %v, %v", ids(got), err)
	}
	next["dp1"] = 3
	signal := s.Appended()
	select {
	case <-signal:
		t.Fatal("signalled before anything was appended")
	default:
	}
	if _, err := s.Append("dp1", recs[2:]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-signal:
	default:
		t.Fatal("no signal after an append")
	}
	got, _, err = s.ReadAfter(next, pos, 10)
	if err != nil || !slices.Equal(ids(got), []string{"dp1/3", "dp1/4"}) {
		t.Fatalf("read %v, %v", ids(got), err)
	}
	if m := s.Marks(); m["dp1"] != 5 {
		t.Fatalf("marks %v", m)
	}
}

// TestGetFindsRecordsAcrossSegmentsAndRestarts.
func TestGetFindsRecordsAcrossSegmentsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, auditstore.Options{SegmentSize: 300})
	interleaved(t, s)
	check := func(s *auditstore.Store) {
		t.Helper()
		for _, id := range []struct {
			dp  string
			seq uint64
		}{{"dp1", 1}, {"dp1", 6}, {"dp2", 3}} {
			r, err := s.Get(id.dp, id.seq)
			if err != nil || r.GetDataplane() != id.dp || r.GetSequence() != id.seq {
				t.Fatalf("Get(%s, %d) = %v, %v", id.dp, id.seq, r, err)
			}
		}
		if _, err := s.Get("dp1", 7); err == nil {
			t.Fatal("found a record never stored")
		}
		if _, err := s.Get("dp9", 1); err == nil {
			t.Fatal("found a record of an unknown chain")
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, dir, auditstore.Options{SegmentSize: 300}))
}
