package drills

import (
	"errors"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestMatchAudit makes sure the dataplane-kill invariant can fail: a lost
// record, a duplicate and a record of no call are each counted.
func TestMatchAudit(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	mk := func(startMS, tookMS int, answered bool) call {
		c := call{answered: answered, res: harness.ToolCall{MCPResponse: harness.MCPResponse{Start: at(startMS), Elapsed: time.Duration(tookMS) * time.Millisecond}}}
		if !answered {
			c.err = errors.New("connection refused")
		}
		return c
	}
	calls := []call{mk(0, 10, true), mk(20, 10, true), mk(40, 10, false)}
	agents := []string{"a"}
	tests := []struct {
		name    string
		records []time.Time
		want    auditMatch
	}{
		{"one each", []time.Time{at(5), at(25)},
			auditMatch{answered: 2, ok: 2, records: 2, exactlyOne: 2}},
		{"unanswered call recorded", []time.Time{at(5), at(25), at(45)},
			auditMatch{answered: 2, ok: 2, records: 3, exactlyOne: 2, ofUnanswered: 1}},
		{"lost record", []time.Time{at(5)},
			auditMatch{answered: 2, ok: 2, records: 1, exactlyOne: 1, none: 1}},
		{"duplicate", []time.Time{at(5), at(6), at(25)},
			auditMatch{answered: 2, ok: 2, records: 3, exactlyOne: 1, several: 1}},
		{"record of no call", []time.Time{at(5), at(15), at(25)},
			auditMatch{answered: 2, ok: 2, records: 3, exactlyOne: 2, orphans: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchAudit(calls, agents, map[string][]time.Time{"a": tt.records}); got != tt.want {
				t.Errorf("matchAudit = %+v, want %+v", got, tt.want)
			}
		})
	}
}
