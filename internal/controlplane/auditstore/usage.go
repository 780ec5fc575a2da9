package auditstore

import (
	"cmp"
	"slices"
	"time"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// UsageGroup is what Usage sums by.
type UsageGroup int

// Groups.
const (
	ByAgent UsageGroup = iota + 1
	ByTeam
	ByUser
	// ByModel keys calls by "<upstream>/<model id>", as price tables are
	// named.
	ByModel
)

// MaxUsageKeys bounds the rows Usage keeps; the calls of keys beyond it
// are summed in the row OtherKey.
const MaxUsageKeys = 100_000

// OtherKey is the row of the keys beyond MaxUsageKeys.
const OtherKey = "(other)"

// UsageFilter selects the records Usage sums. Zero fields match
// everything; From ≤ time < To.
type UsageFilter struct {
	From, To                 time.Time
	Agent, Team, User, Model string
}

// UsageRow is what the calls of one key consumed.
type UsageRow struct {
	Key                                   string
	Calls, EstimatedCalls, UnpricedCalls  uint64
	Input, CachedInput, Output, Reasoning int64
	CostNanos                             int64
}

// Usage sums the usage of the records f selects, grouped by g: one row
// per key, highest cost first, then by key. It also returns how many
// records it read. Segments outside f's time range are skipped unread.
func (s *Store) Usage(f UsageFilter, g UsageGroup) ([]UsageRow, uint64, error) {
	view := s.view()
	kept := view[:0]
	for _, seg := range view {
		if seg.size > 0 && !seg.maxTime.IsZero() &&
			((!f.From.IsZero() && seg.maxTime.Before(f.From)) || (!f.To.IsZero() && !seg.minTime.Before(f.To))) {
			continue
		}
		kept = append(kept, seg)
	}
	rows := map[string]*UsageRow{}
	var read uint64
	err := walk(kept, 0, 0, func(_ position, r *auditv1.Record, _ error) (bool, error) {
		if r == nil {
			return true, nil
		}
		read++
		u := r.GetUsage()
		if u == nil || !f.match(r) {
			return true, nil
		}
		key := usageKey(r, g)
		row := rows[key]
		if row == nil {
			if len(rows) >= MaxUsageKeys {
				key = OtherKey
				row = rows[key]
			}
			if row == nil {
				row = &UsageRow{Key: key}
				rows[key] = row
			}
		}
		row.Calls++
		if u.GetEstimated() {
			row.EstimatedCalls++
		}
		if !u.GetPriced() {
			row.UnpricedCalls++
		}
		row.Input += u.GetInputTokens()
		row.CachedInput += u.GetCachedInputTokens()
		row.Output += u.GetOutputTokens()
		row.Reasoning += u.GetReasoningTokens()
		row.CostNanos += u.GetCostNanos()
		return true, nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := make([]UsageRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b UsageRow) int {
		return cmp.Or(cmp.Compare(b.CostNanos, a.CostNanos), cmp.Compare(a.Key, b.Key))
	})
	return out, read, nil
}

func (f *UsageFilter) match(r *auditv1.Record) bool {
	t := r.GetTime().AsTime()
	eq := func(want, have string) bool { return want == "" || want == have }
	return eq(f.Agent, r.GetAgent()) && eq(f.Team, r.GetTeam()) && eq(f.User, r.GetUser()) &&
		eq(f.Model, modelKey(r)) &&
		(f.From.IsZero() || !t.Before(f.From)) && (f.To.IsZero() || t.Before(f.To))
}

func usageKey(r *auditv1.Record, g UsageGroup) string {
	switch g {
	case ByTeam:
		return r.GetTeam()
	case ByUser:
		return r.GetUser()
	case ByModel:
		return modelKey(r)
	}
	return r.GetAgent()
}

// modelKey is "<upstream>/<model id>" of a model call's record: the
// model as its upstream names it (target_own; tool holds the name the
// agent called it by, which may be an alias).
func modelKey(r *auditv1.Record) string {
	own := r.GetTargetOwn()
	if own == "" {
		own = r.GetTool()
	}
	return r.GetUpstream() + "/" + own
}
