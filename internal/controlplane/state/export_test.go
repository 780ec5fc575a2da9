package state

import (
	"encoding/binary"
	"fmt"

	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// AgentIndex lists the entries of s's agent identifier index, each as
// "<kind> <identifier> <agent>", in key order.
func AgentIndex(s *State) []string {
	var out []string
	it := s.agentIDs.Root().Iterator()
	for k, name, ok := it.Next(); ok; k, name, ok = it.Next() {
		n, w := binary.Uvarint(k[1:])
		id := string(k[1+w : 1+w+int(n)])
		if got := string(k[1+w+int(n):]); got != name {
			out = append(out, fmt.Sprintf("bad entry: key names %q, value %q", got, name))
		}
		out = append(out, fmt.Sprintf("%c %s %s", k[0], id, name))
	}
	return out
}

// ApplyFullRevalidation is Apply with a pin write re-validating every
// policy of every enabled set, as before re-validation was scoped.
func ApplyFullRevalidation(s *State, index uint64, cmd *fsmv1.Command) (*State, *fsmv1.Result) {
	return apply(s, index, cmd, true)
}

// ParsedSets is the number of policy sources s holds parsed.
func ParsedSets(s *State) int { return s.parsed.Len() }

// Inject returns s with r stored as is, bypassing every rule: a state
// that Apply could not produce, for tests of what a rule would catch.
func Inject(s *State, r *fsmv1.Resource) *State {
	t := newTxn(s, s.index, &fsmv1.Command{})
	t.insert(r)
	next := *s
	t.commitTo(&next)
	return &next
}
