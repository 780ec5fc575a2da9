package cedarschema

import (
	"fmt"
	"strings"
)

// Position is a place in a policy source file. Line and Column start at 1;
// zero means unknown.
type Position struct {
	Filename string
	Line     int
	Column   int
}

// String renders the position as "file:line:col", leaving out what is
// unknown.
func (p Position) String() string {
	switch {
	case p.Line <= 0:
		return p.Filename
	case p.Column <= 0:
		return fmt.Sprintf("%s:%d", p.Filename, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column)
}

// Diagnostic is one problem found in a policy set.
type Diagnostic struct {
	Position Position
	// PolicyID is the gateway-wide id ("<set>/<id>") of the policy at
	// fault, or empty when the source did not parse.
	PolicyID string
	Message  string
}

// String renders the diagnostic as "file:line:col: policy <id>: message".
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Position.String())
	b.WriteString(": ")
	if d.PolicyID != "" {
		b.WriteString("policy ")
		b.WriteString(d.PolicyID)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Error is returned when policy sources fail to parse or validate. It lists
// every problem found.
type Error struct {
	Diagnostics []Diagnostic
}

// Error renders one diagnostic per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}
