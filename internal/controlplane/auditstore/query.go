package auditstore

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Filter selects records. Zero fields match everything.
type Filter struct {
	// From and To bound the record's time: From ≤ time < To.
	From, To                                           time.Time
	Agent, User, Upstream, Decision, Outcome, Mode, DP string
	// Tool, when set, keeps only the records of one tool, however the
	// record names it (see ToolFilter).
	Tool *ToolFilter
	// UserNotIn, when non-nil, keeps only records whose user is not in it
	// (a record without a user is in no list).
	UserNotIn map[string]bool
	// Kind keeps only records of this kind (EVENT_KIND_UNSPECIFIED: any).
	Kind auditv1.EventKind
}

// ToolFilter selects the records of one tool (or other target). A record
// names its target as agents do in tool ("<prefix>__<tool>") and as the
// upstream does in target_own; records written before target_own existed
// carry the upstream's own name in tool. So a record matches when its
// tool is Name, or when its upstream is Upstream and its own name (its
// target_own, or for such an older record its tool) is Own.
type ToolFilter struct {
	// Name is the name agents use; "" matches no record by this name.
	Name string
	// Upstream and Own are the name the tool's upstream uses; Own ""
	// matches no record by this name.
	Upstream, Own string
}

// Matches reports whether r is a record of the tool t selects.
func (t *ToolFilter) Matches(r *auditv1.Record) bool { return t.match(r) }

func (t *ToolFilter) match(r *auditv1.Record) bool {
	own := r.GetTargetOwn()
	if own == "" && r.GetUpstream() != "" {
		// Written before target_own: tool is the upstream's own name.
		return t.Own != "" && r.GetUpstream() == t.Upstream && r.GetTool() == t.Own
	}
	if t.Name != "" && r.GetTool() == t.Name {
		return true
	}
	return t.Own != "" && own != "" && r.GetUpstream() == t.Upstream && own == t.Own
}

func (f *Filter) match(r *auditv1.Record) bool {
	eq := func(want, have string) bool { return want == "" || want == have }
	if !eq(f.Agent, r.GetAgent()) || !eq(f.User, r.GetUser()) ||
		!eq(f.Upstream, r.GetUpstream()) || !eq(f.Decision, r.GetDecision()) ||
		!eq(f.Outcome, r.GetOutcome()) || !eq(f.Mode, r.GetMode()) || !eq(f.DP, r.GetDataplane()) {
		return false
	}
	if f.Tool != nil && !f.Tool.match(r) {
		return false
	}
	if f.UserNotIn != nil && r.GetUser() != "" && f.UserNotIn[r.GetUser()] {
		return false
	}
	if f.Kind != auditv1.EventKind_EVENT_KIND_UNSPECIFIED && r.GetKind() != f.Kind {
		return false
	}
	t := r.GetTime().AsTime()
	if !f.From.IsZero() && t.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !t.Before(f.To) {
		return false
	}
	return true
}

// ErrBadPageToken reports a page token this store did not issue.
var ErrBadPageToken = errors.New("invalid page token")

// Query returns up to limit records matching f, in storage order, from
// the position pageToken names ("" for the start), and the token of the
// next page ("" when the scan reached the end). A page ends early only at
// the limit; the page after the last match may be empty. Segments whose
// records all lie outside f's time range are skipped unread.
func (s *Store) Query(f Filter, pageToken string, limit int) ([]*auditv1.Record, string, error) {
	fromSeg, fromOff, err := parseToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	view := s.view()
	kept := view[:0]
	for _, seg := range view {
		if seg.size > 0 && !seg.maxTime.IsZero() &&
			((!f.From.IsZero() && seg.maxTime.Before(f.From)) || (!f.To.IsZero() && !seg.minTime.Before(f.To))) {
			continue
		}
		kept = append(kept, seg)
	}
	var (
		out  []*auditv1.Record
		next string
	)
	err = walk(kept, fromSeg, fromOff, func(pos position, r *auditv1.Record, _ error) (bool, error) {
		if r == nil || !f.match(r) {
			return true, nil
		}
		out = append(out, r)
		if len(out) >= limit {
			next = makeToken(pos.seg, pos.end)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// Follow returns up to limit records matching f from the position cursor
// names ("" for the start), in storage order, and the cursor to continue
// from: after the last record read, also when the scan reached the end,
// so that a caller that follows the store as it grows (the rollout
// controller) reads every record once. Unlike Query it reads every
// segment, whatever f's time range.
func (s *Store) Follow(f Filter, cursor string, limit int) ([]*auditv1.Record, string, error) {
	fromSeg, fromOff, err := parseToken(cursor)
	if err != nil {
		return nil, "", err
	}
	var out []*auditv1.Record
	next := cursor
	err = walk(s.view(), fromSeg, fromOff, func(pos position, r *auditv1.Record, _ error) (bool, error) {
		next = makeToken(pos.seg, pos.end)
		if r != nil && f.match(r) {
			out = append(out, r)
		}
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// Since is the cursor (for Follow) of the first segment that may hold a
// record at or after t: segments whose records are all older are
// skipped (the end of the store when all are).
func (s *Store) Since(t time.Time) string {
	view := s.view()
	for _, seg := range view {
		if seg.size > 0 && !seg.maxTime.IsZero() && seg.maxTime.Before(t) {
			continue
		}
		return makeToken(seg.id, 0)
	}
	if len(view) == 0 {
		return ""
	}
	last := view[len(view)-1]
	return makeToken(last.id, last.size)
}

func makeToken(seg uint64, off int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d", seg, off))
}

func parseToken(tok string) (uint64, int64, error) {
	if tok == "" {
		return 0, 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, 0, ErrBadPageToken
	}
	a, c, ok := strings.Cut(string(b), ":")
	if !ok {
		return 0, 0, ErrBadPageToken
	}
	seg, err1 := strconv.ParseUint(a, 10, 64)
	off, err2 := strconv.ParseInt(c, 10, 64)
	if err1 != nil || err2 != nil || off < 0 {
		return 0, 0, ErrBadPageToken
	}
	return seg, off, nil
}
