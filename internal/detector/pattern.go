package detector

import (
	"fmt"
	"regexp"
	"unicode/utf8"
)

// MaxPatternLen bounds an operator pattern's source.
const MaxPatternLen = 1024

// Pat is an operator pattern: a regular expression in RE2 syntax (Go's
// regexp), which matches in time linear in the text and has no
// backreferences or lookaround. It is immutable and safe for concurrent
// use.
type Pat struct {
	kind string
	re   *regexp.Regexp
}

// CompilePattern compiles expr as the pattern reported as kind. An
// expression that is too long, does not compile, or matches the empty
// string (it would match everywhere) is refused with a message safe to
// show to the operator.
func CompilePattern(kind, expr string) (*Pat, error) {
	if len(expr) == 0 || len(expr) > MaxPatternLen || !utf8.ValidString(expr) {
		return nil, fmt.Errorf("a pattern is 1-%d bytes of UTF-8", MaxPatternLen)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("not an RE2 regular expression: %w", err)
	}
	if re.MatchString("") {
		return nil, fmt.Errorf("%q matches the empty string, so it would match every text", expr)
	}
	return &Pat{kind: kind, re: re}, nil
}

// Kind is the kind the pattern reports.
func (p *Pat) Kind() string { return p.kind }

func (p *Pat) scan(s string, emit Emit) bool {
	for _, loc := range p.re.FindAllStringIndex(s, -1) {
		if loc[0] == loc[1] {
			continue
		}
		if !emit(Match{Detector: Pattern, Kind: p.kind, Start: loc[0], End: loc[1]}) {
			return false
		}
	}
	return true
}
