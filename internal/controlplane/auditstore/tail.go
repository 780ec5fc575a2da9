package auditstore

import (
	"errors"
	"fmt"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Reading the store in order, for the leader's audit consumers.
//
// A consumer's cursor is the next sequence of every chain (data plane,
// and the control plane's own): the same on every node, because every
// node's store holds the same records of each chain. Where those records
// sit in this node's segments is not: a Position is only a hint of where
// to go on reading, on this node. ReadAfter never trusts it over the
// cursor: it returns exactly the records at or after the cursor's next
// sequence of their chain, in the order the cluster committed them.

// Position is where a reader stands in this node's store. The zero
// Position starts from the first segment that can hold a record the
// cursor has not consumed.
type Position struct {
	seg uint64
	off int64
	set bool
}

// Appended returns a channel closed once records next reach the store.
func (s *Store) Appended() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.appended
}

// Marks returns the next sequence the store expects of every chain it has
// seen: where a cursor that starts from now begins.
func (s *Store) Marks() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]uint64, len(s.marks))
	for dp, m := range s.marks {
		out[dp] = m.Next
	}
	return out
}

// next is the cursor's next sequence of chain: 1 for a chain it does not
// know (one that appeared after the cursor was made).
func nextOf(next map[string]uint64, chain string) uint64 {
	if n, ok := next[chain]; ok {
		return n
	}
	return 1
}

// startSegment is the id of the first segment holding a record at or
// after the cursor, and false when none does.
func (s *Store) startSegment(next map[string]uint64) (uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, seg := range s.segs {
		for chain, r := range seg.chains {
			if r.max >= nextOf(next, chain) {
				return seg.id, true
			}
		}
	}
	return 0, false
}

// ReadAfter returns up to limit records the cursor next has not consumed
// (sequence at or after next[chain]; a chain next does not name counts
// from 1), in the order the cluster stored them, reading from from, and
// the position to read on from. A record the store no longer holds
// (retention dropped it) is skipped: the caller can tell from the
// sequences.
func (s *Store) ReadAfter(next map[string]uint64, from Position, limit int) ([]*auditv1.Record, Position, error) {
	if limit <= 0 {
		return nil, from, nil
	}
	if !from.set {
		id, ok := s.startSegment(next)
		if !ok {
			return nil, s.end(), nil
		}
		from = Position{seg: id, set: true}
	}
	view := s.view()
	var out []*auditv1.Record
	pos := from
	err := walk(view, from.seg, from.off, func(p position, r *auditv1.Record, _ error) (bool, error) {
		pos = Position{seg: p.seg, off: p.end, set: true}
		if r != nil && r.GetSequence() >= nextOf(next, r.GetDataplane()) {
			out = append(out, r)
		}
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, from, err
	}
	if len(out) < limit && len(view) > 0 {
		// Read to the end of the view: go on from there.
		last := view[len(view)-1]
		if last.id > pos.seg || (last.id == pos.seg && last.size > pos.off) {
			pos = Position{seg: last.id, off: last.size, set: true}
		}
	}
	return out, pos, nil
}

// end is the position after the last record.
func (s *Store) end() Position {
	s.mu.RLock()
	defer s.mu.RUnlock()
	last := s.segs[len(s.segs)-1]
	return Position{seg: last.id, off: last.size, set: true}
}

// ErrNotHeld reports a record this node's store does not hold.
var ErrNotHeld = errors.New("audit record not held")

// Get returns the record of chain with sequence seq.
func (s *Store) Get(chain string, seq uint64) (*auditv1.Record, error) {
	s.mu.RLock()
	var ids []uint64
	for _, seg := range s.segs {
		if r := seg.chains[chain]; r != nil && r.min <= seq && seq <= r.max {
			ids = append(ids, seg.id)
		}
	}
	s.mu.RUnlock()
	var found *auditv1.Record
	for _, seg := range s.view() {
		if found != nil || !containsID(ids, seg.id) {
			continue
		}
		err := walk([]segment{seg}, seg.id, 0, func(_ position, r *auditv1.Record, _ error) (bool, error) {
			if r != nil && r.GetDataplane() == chain && r.GetSequence() == seq {
				found = r
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s/%d", ErrNotHeld, chain, seq)
	}
	return found, nil
}

func containsID(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
