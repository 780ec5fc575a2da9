package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// spread is the median and range of one figure over several runs.
type spread struct {
	med, lo, hi float64
	n           int
}

// spreadOf summarises vs; the median of an even count is the mean of the
// middle two. Its n is 0 for no values.
func spreadOf(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med: m, lo: s[0], hi: s[len(s)-1], n: len(s)}
}

func (s spread) ok() bool { return s.n > 0 }

func (s spread) medDur() time.Duration { return time.Duration(math.Round(s.med)) }

// msText is "1.234 ms (1.100–1.400)", a spread of durations.
func (s spread) msText() string {
	if !s.ok() {
		return "n/a"
	}
	if s.n == 1 {
		return ms(s.medDur())
	}
	return fmt.Sprintf("%s (%.3f–%.3f)", ms(s.medDur()), s.lo/1e6, s.hi/1e6)
}

// signedMsText is msText with a sign, for added latencies.
func (s spread) signedMsText() string {
	if !s.ok() {
		return "n/a"
	}
	if s.n == 1 {
		return signed(s.medDur())
	}
	return fmt.Sprintf("%s (%s–%s)", signed(s.medDur()), signedNum(s.lo/1e6), signedNum(s.hi/1e6))
}

func signedNum(v float64) string {
	if v < 0 {
		return fmt.Sprintf("−%.3f", -v)
	}
	return fmt.Sprintf("+%.3f", v)
}

// usText is "230 µs (220–250)", a spread of durations in microseconds.
func (s spread) usText() string {
	if !s.ok() {
		return "n/a"
	}
	if s.n == 1 {
		return fmt.Sprintf("%.0f µs", s.med/1e3)
	}
	return fmt.Sprintf("%.0f µs (%.0f–%.0f)", s.med/1e3, s.lo/1e3, s.hi/1e3)
}

// numText is "1234 (1200–1300)" with the given decimals.
func (s spread) numText(decimals int) string {
	if !s.ok() {
		return "n/a"
	}
	if s.n == 1 {
		return fmt.Sprintf("%.*f", decimals, s.med)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", decimals, s.med, decimals, s.lo, decimals, s.hi)
}
