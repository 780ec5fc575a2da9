package auditstore

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Chain summarizes one data plane's records in the store.
type Chain struct {
	Dataplane   string
	Records     uint64
	First, Last uint64
	// Head is the hash of the last record.
	Head []byte
}

// Problem names the first record at which a chain is not intact.
type Problem struct {
	// Dataplane and Sequence name the record ("" and 0 when a frame is
	// too damaged to tell whose it is).
	Dataplane string
	Sequence  uint64
	// Segment and Offset locate its frame on this node's disk.
	Segment string
	Offset  int64
	Reason  string
}

func (p *Problem) Error() string {
	who := fmt.Sprintf("data plane %q record %d", p.Dataplane, p.Sequence)
	if p.Dataplane == "" {
		who = "a record"
	}
	return fmt.Sprintf("audit store not intact: %s (%s offset %d): %s", who, p.Segment, p.Offset, p.Reason)
}

// Range is one data plane's records in an attested time range: the run
// of sequences from the first record whose time is at or after the range's
// start to the last one whose time is before its end (records in between
// are counted even if their own time falls outside, so the run is whole).
type Range struct {
	Dataplane     string
	Records       uint64
	First, Last   uint64
	FirstPrevHash []byte
	Head          []byte
}

// Report is the result of Verify.
type Report struct {
	// Chains, by data plane name.
	Chains []Chain
	// Problem is the first bad record in storage order; nil when intact.
	Problem *Problem
	// Ranges is filled by Attest's check, by data plane name.
	Ranges []Range
}

// Verify checks every data plane's chain: frames whole with matching
// CRCs, sequences running on without gaps or repeats from the first
// stored one (1, or one past the last record retention dropped), every
// prev_hash the hash of the record before, and every hash what the rule
// on auditv1.Record's hash field gives. It stops at the first violation.
func (s *Store) Verify() (Report, error) {
	return s.check(time.Time{}, time.Time{}, false)
}

// Ranges verifies the store like Verify and, when it is intact, also
// returns per data plane the run of records in [from, to).
func (s *Store) Ranges(from, to time.Time) (Report, error) {
	return s.check(from, to, true)
}

type chainState struct {
	next  uint64
	prev  []byte
	chain Chain
	rng   Range
	// rangeHeadTime: sequences after the range's end are not counted.
	pending []*auditv1.Record
}

func (s *Store) check(from, to time.Time, ranges bool) (Report, error) {
	s.mu.RLock()
	base := make(map[string]mark, len(s.base))
	for k, v := range s.base {
		base[k] = v
	}
	s.mu.RUnlock()
	view := s.view()

	chains := map[string]*chainState{}
	var problem *Problem
	var scratch []byte
	err := walk(view, 0, 0, func(pos position, r *auditv1.Record, ferr error) (bool, error) {
		bad := func(dp string, seq uint64, format string, args ...any) (bool, error) {
			problem = &Problem{Dataplane: dp, Sequence: seq, Segment: pos.path, Offset: pos.off, Reason: fmt.Sprintf(format, args...)}
			return false, nil
		}
		if r == nil {
			return bad("", 0, "frame is damaged: %v", ferr)
		}
		dp := r.GetDataplane()
		cs := chains[dp]
		if cs == nil {
			cs = &chainState{next: 1, prev: auditchain.Zero, chain: Chain{Dataplane: dp}}
			if b, ok := base[dp]; ok {
				cs.next, cs.prev = b.Next, b.Head
			}
			cs.chain.First = cs.next
			chains[dp] = cs
		}
		if ferr != nil {
			return bad(dp, r.GetSequence(), "the record's bytes on disk were changed (frame checksum does not match)")
		}
		if r.GetSequence() != cs.next {
			return bad(dp, r.GetSequence(), "sequence %d where %d was expected", r.GetSequence(), cs.next)
		}
		var reason string
		if reason, scratch = auditchain.Check(r, cs.prev, scratch); reason != "" {
			return bad(dp, r.GetSequence(), "%s", reason)
		}
		cs.next++
		cs.prev = r.GetHash()
		cs.chain.Records++
		cs.chain.Last, cs.chain.Head = r.GetSequence(), r.GetHash()
		if ranges {
			cs.addToRange(r, from, to)
		}
		return true, nil
	})
	if err != nil {
		return Report{}, err
	}
	rep := Report{Problem: problem}
	names := make([]string, 0, len(chains))
	for dp := range chains {
		names = append(names, dp)
	}
	slices.SortFunc(names, strings.Compare)
	for _, dp := range names {
		cs := chains[dp]
		if cs.chain.Records == 0 {
			cs.chain.First = 0
		}
		rep.Chains = append(rep.Chains, cs.chain)
		if ranges && cs.rng.Records > 0 {
			cs.rng.Dataplane = dp
			rep.Ranges = append(rep.Ranges, cs.rng)
		}
	}
	return rep, nil
}

// addToRange extends the data plane's run with r: a record in [from, to)
// opens the run (if not open) and closes it at r; records between two
// such records are held in pending and counted when the run reaches past
// them.
func (cs *chainState) addToRange(r *auditv1.Record, from, to time.Time) {
	t := r.GetTime().AsTime()
	in := (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
	if cs.rng.Records == 0 {
		if !in {
			return
		}
		cs.rng = Range{Records: 1, First: r.GetSequence(), Last: r.GetSequence(), FirstPrevHash: r.GetPrevHash(), Head: r.GetHash()}
		return
	}
	if !in {
		cs.pending = append(cs.pending, r)
		return
	}
	cs.rng.Records += uint64(len(cs.pending)) + 1
	cs.rng.Last, cs.rng.Head = r.GetSequence(), r.GetHash()
	cs.pending = cs.pending[:0]
}
