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

// Error is a refused snapshot: every problem found, one per entry, in the
// order they were checked.
type Error struct {
	// Version is the refused snapshot's version (0 if it did not decode).
	Version  uint64
	Problems []string
}

// Error renders the problems one per line, cut off at [MaxErrorBytes] with a
// count of what was left out.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "snapshot version %d refused (%d %s):", e.Version, len(e.Problems), plural(len(e.Problems), "problem", "problems"))
	for i, p := range e.Problems {
		line := "\n- " + argjson.Truncate(p, maxProblemBytes)
		// Reserve room for the trailer that counts the rest.
		if b.Len()+len(line) > MaxErrorBytes-64 {
			fmt.Fprintf(&b, "\n… and %d more", len(e.Problems)-i)
			break
		}
		b.WriteString(line)
	}
	return b.String()
}

// problems collects what is wrong with a snapshot.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
