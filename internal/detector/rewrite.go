package detector

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Span is a part of a text to rewrite, with the name of what was found
// there ("pii.email").
type Span struct {
	Start, End int
	Name       string
}

// MaskKeep is how many letters and digits at the end of a masked span stay
// readable.
const MaskKeep = 4

// Rewrite returns text with every span replaced: by "[REDACTED:<name>]"
// or, with mask, by the span with every letter and digit but the last
// MaskKeep turned into '*' (other characters kept, so the shape stays).
// Overlapping spans are merged (the first one's name is kept); spans
// outside text are clipped.
func Rewrite(text string, spans []Span, mask bool) string {
	if len(spans) == 0 {
		return text
	}
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b Span) int { return a.Start - b.Start })
	var sb strings.Builder
	sb.Grow(len(text))
	pos := 0
	for k := 0; k < len(spans); k++ {
		sp := spans[k]
		start, end := max(sp.Start, pos), min(sp.End, len(text))
		for k+1 < len(spans) && spans[k+1].Start < end {
			k++
			end = max(end, min(spans[k].End, len(text)))
		}
		if start >= end {
			continue
		}
		// Whole runes only.
		for start > pos && !utf8.RuneStart(text[start]) {
			start--
		}
		for end < len(text) && !utf8.RuneStart(text[end]) {
			end++
		}
		sb.WriteString(text[pos:start])
		if mask {
			writeMasked(&sb, text[start:end])
		} else {
			sb.WriteString("[REDACTED:")
			sb.WriteString(sp.Name)
			sb.WriteByte(']')
		}
		pos = end
	}
	sb.WriteString(text[pos:])
	return sb.String()
}

// writeMasked writes s with its letters and digits, but the last MaskKeep
// ASCII ones, as '*'. Non-ASCII runes become '*' too (a tag character or
// an accented letter is masked, not kept).
func writeMasked(sb *strings.Builder, s string) {
	keepFrom := len(s)
	for kept := 0; keepFrom > 0 && kept < MaskKeep; {
		keepFrom--
		if isAlnum(s[keepFrom]) {
			kept++
		}
	}
	for i, r := range s {
		switch {
		case r < utf8.RuneSelf && isAlnum(byte(r)) && i >= keepFrom:
			sb.WriteRune(r)
		case r < utf8.RuneSelf && !isAlnum(byte(r)):
			sb.WriteRune(r)
		default:
			sb.WriteByte('*')
		}
	}
}
