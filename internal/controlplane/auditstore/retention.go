package auditstore

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Prune drops whole segments, oldest first, while the oldest one's newest
// record is older than the retention or the store is larger than MaxBytes.
// The segment being appended to is never dropped. Before deleting, it
// records in base.json where each data plane's chain stood at the cut.
// Each node prunes on its own clock; the replicas may briefly differ in
// how much history they keep, never in what they hold after the cut.
func (s *Store) Prune(now time.Time) (dropped int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil
	}
	var total int64
	for _, seg := range s.segs {
		total += seg.size
	}
	n := 0
	for n < len(s.segs)-1 {
		seg := s.segs[n]
		old := s.opts.Retention > 0 && (seg.maxTime.IsZero() || now.Sub(seg.maxTime) > s.opts.Retention)
		big := s.opts.MaxBytes > 0 && total > s.opts.MaxBytes
		if !old && !big {
			break
		}
		total -= seg.size
		n++
	}
	if n == 0 {
		return 0, nil
	}
	drop := make([]segment, n)
	base := make(map[string]mark, len(s.base))
	for k, v := range s.base {
		base[k] = v
	}
	for i, seg := range s.segs[:n] {
		drop[i] = *seg
		for chain, c := range seg.chains {
			if b, ok := base[chain]; !ok || c.max >= b.Next {
				base[chain] = mark{Next: c.max + 1, Head: c.head, Version: c.version}
			}
		}
	}
	old := s.base
	s.base = base
	if err := s.saveBase(); err != nil {
		s.base = old
		return 0, err
	}
	for _, seg := range drop {
		for _, p := range []string{seg.path, indexPath(s.opts.Dir, seg.id)} {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return 0, fmt.Errorf("remove audit segment: %w", err)
			}
		}
	}
	s.segs = append(s.segs[:0], s.segs[n:]...)
	s.log.Info("audit retention dropped old segments", "segments", n)
	return n, nil
}

// RunRetention prunes every interval until ctx ends.
func (s *Store) RunRetention(ctx context.Context, interval time.Duration, now func() time.Time) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Prune(now()); err != nil {
			s.log.ErrorContext(ctx, "audit retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
