package config

import (
	"fmt"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/argjson"
)

// Bounds on the text of an [Error]: it travels back to the control plane as
// a nack reason and is shown to operators, so it stays small.
const (
	// MaxErrorBytes bounds Error's text.
	MaxErrorBytes = 4096
	// maxProblemBytes bounds one problem's text.
	maxProblemBytes = 512
)

// maxProblems bounds the problems an Error keeps; past it, only a count.
const maxProblems = 100

// Error is a refused snapshot: the problems found, one per entry, in the
// order they were checked.
type Error struct {
	// Version is the refused snapshot's version (0 if it did not decode).
	Version  uint64
	Problems []string
	// Omitted counts the problems found beyond the first maxProblems.
	Omitted int
}

// Error renders the problems one per line, cut off at [MaxErrorBytes] with a
// count of what was left out.
func (e *Error) Error() string {
	var b strings.Builder
	total := len(e.Problems) + e.Omitted
	fmt.Fprintf(&b, "snapshot version %d refused (%d %s):", e.Version, total, plural(total, "problem", "problems"))
	for i, p := range e.Problems {
		line := "\n- " + argjson.Truncate(p, maxProblemBytes)
		// Reserve room for the trailer that counts the rest.
		if b.Len()+len(line) > MaxErrorBytes-64 {
			fmt.Fprintf(&b, "\n… and %d more", total-i)
			return b.String()
		}
		b.WriteString(line)
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "\n… and %d more", e.Omitted)
	}
	return b.String()
}

// problems collects what is wrong with a snapshot: the first maxProblems,
// and how many more, so a snapshot with a million faults costs no more
// memory to refuse than one with a hundred.
type problems struct {
	list    []string
	omitted int
}

func (p *problems) add(format string, args ...any) {
	if len(p.list) >= maxProblems {
		p.omitted++
		return
	}
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

// any reports whether a problem was found.
func (p *problems) any() bool { return len(p.list) > 0 }

// err is the Error listing the problems of the snapshot at version.
func (p *problems) err(version uint64) *Error {
	return &Error{Version: version, Problems: p.list, Omitted: p.omitted}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
