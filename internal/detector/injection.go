package detector

import (
	"regexp"
	"strings"
)

// Injection kind indexes (their order in kinds[Injection]).
const (
	injInstruction = iota
	injUnicodeTags
	injHiddenText
)

// hiddenProps are CSS declarations that hide text from a human reader
// (and not from a model reading the markup): the property, and the values
// that hide.
var hiddenProps = []struct {
	prop   string
	values []string
}{
	{"display", []string{"none"}},
	{"visibility", []string{"hidden"}},
	{"font-size", []string{"0"}},
	{"opacity", []string{"0"}},
}

// markdownComment is a markdown reference-link comment: "[//]: # (…)".
var markdownComment = regexp.MustCompile(`(?m)^[ \t]*\[(?://|comment)\]:[ \t]*#`)

// minCommentLetters is how many letters an HTML comment must hold to count
// as hidden text (a short comment is markup, not a message).
const minCommentLetters = 20

// scanInjection reports instructions aimed at an AI agent and text hidden
// from a human reader.
func scanInjection(t *Text, want mask, emit Emit) bool {
	s := t.s
	rep := func(kind string, start, end int) bool {
		return emit(Match{Detector: Injection, Kind: kind, Start: start, End: end})
	}
	lowered := t.Lower
	if want.has(injInstruction) && !instructions(t, rep) {
		return false
	}
	if want.has(injUnicodeTags) && !unicodeTags(s, rep) {
		return false
	}
	if want.has(injHiddenText) {
		if !invisibles(s, rep) || !htmlComments(s, rep) {
			return false
		}
		if strings.IndexByte(s, ':') >= 0 && !hiddenStyles(lowered(), rep) {
			return false
		}
		if strings.Contains(s, "]:") {
			for _, loc := range markdownComment.FindAllStringIndex(s, -1) {
				if !rep("hidden_text", loc[0], loc[1]) {
					return false
				}
			}
		}
	}
	return true
}

// asciiLower returns s with ASCII letters in lower case (other bytes kept,
// so offsets match s).
func asciiLower(s string) string {
	b := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return string(b)
}

// hiddenStyles reports CSS declarations that hide text, in lower (the
// text in lower case): "display: none", "visibility:hidden", "font-size:
// 0px", "opacity: 0.0". One search per property, each linear.
func hiddenStyles(lower string, rep report) bool {
	for _, hp := range hiddenProps {
		for i := 0; i < len(lower); {
			k := strings.Index(lower[i:], hp.prop)
			if k < 0 {
				break
			}
			start := i + k
			i = start + len(hp.prop)
			j := skipCSSSpace(lower, i)
			if j >= len(lower) || lower[j] != ':' {
				continue
			}
			j = skipCSSSpace(lower, j+1)
			end, ok := hidingValue(lower, j, hp.values)
			if !ok {
				continue
			}
			if !rep("hidden_text", start, end) {
				return false
			}
			i = end
		}
	}
	return true
}

func skipCSSSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// hidingValue reports whether a value that hides starts at i and ends a
// declaration (a zero may have decimals and a unit), and where it ends.
func hidingValue(s string, i int, values []string) (int, bool) {
	for _, v := range values {
		if !strings.HasPrefix(s[i:], v) {
			continue
		}
		j := i + len(v)
		if v == "0" {
			if j < len(s) && s[j] == '.' {
				j++
				for j < len(s) && s[j] == '0' {
					j++
				}
			}
			for _, unit := range []string{"px", "pt", "rem", "em", "%"} {
				if strings.HasPrefix(s[j:], unit) {
					j += len(unit)
					break
				}
			}
		}
		e := skipCSSSpace(s, j)
		if e == len(s) || s[e] == ';' || s[e] == '"' || s[e] == '\'' || s[e] == '}' {
			return j, true
		}
	}
	return 0, false
}

// unicodeTags reports runs of Unicode tag characters (U+E0000–U+E007F):
// invisible in most renderings, they spell ASCII that a model reads
// ("ASCII smuggling").
func unicodeTags(s string, rep report) bool {
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], "\xf3\xa0")
		if k < 0 {
			return true
		}
		start := i + k
		j := start
		for j+4 <= len(s) && s[j] == 0xf3 && s[j+1] == 0xa0 && (s[j+2] == 0x80 || s[j+2] == 0x81) && s[j+3]&0xc0 == 0x80 {
			j += 4
		}
		if j == start {
			i = start + 2
			continue
		}
		if !rep("unicode_tags", start, j) {
			return false
		}
		i = j
	}
	return true
}

// invisible reports whether the UTF-8 sequence at s[i:] is a zero-width,
// invisible-operator or bidirectional-control code point, and its length.
func invisible(s string, i int) (n int, bidi, zwj bool) {
	if i+3 > len(s) {
		return 0, false, false
	}
	b0, b1, b2 := s[i], s[i+1], s[i+2]
	switch {
	case b0 == 0xe2 && b1 == 0x80 && (b2 == 0x8b || b2 == 0x8c): // U+200B, U+200C
		return 3, false, false
	case b0 == 0xe2 && b1 == 0x80 && b2 == 0x8d: // U+200D zero-width joiner
		return 3, false, true
	case b0 == 0xe2 && b1 == 0x80 && b2 >= 0xaa && b2 <= 0xae: // U+202A–U+202E
		return 3, true, false
	case b0 == 0xe2 && b1 == 0x81 && b2 >= 0xa0 && b2 <= 0xa4: // U+2060–U+2064
		return 3, false, false
	case b0 == 0xe2 && b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9: // U+2066–U+2069
		return 3, true, false
	case b0 == 0xef && b1 == 0xbb && b2 == 0xbf: // U+FEFF
		return 3, false, false
	case b0 == 0xe1 && b1 == 0xa0 && b2 == 0x8e: // U+180E
		return 3, false, false
	}
	return 0, false, false
}

// invisibles reports runs of invisible code points: bidirectional controls
// always; zero-width characters unless the run is a lone joiner between
// two non-ASCII characters (emoji sequences) or a byte-order mark at the
// very start.
func invisibles(s string, rep report) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != 0xe2 && c != 0xef && c != 0xe1 {
			continue
		}
		start, j := i, i
		joiners, others := 0, 0
		for {
			n, _, zwj := invisible(s, j)
			if n == 0 {
				break
			}
			if zwj {
				joiners++
			} else {
				others++
			}
			j += n
		}
		if j == start {
			continue
		}
		i = j - 1
		if others == 0 && joiners == 1 && start > 0 && s[start-1] >= 0x80 && j < len(s) && s[j] >= 0x80 {
			continue // an emoji sequence
		}
		if start == 0 && others == 1 && joiners == 0 && j == 3 && s[0] == 0xef {
			continue // a byte-order mark
		}
		if !rep("hidden_text", start, j) {
			return false
		}
	}
	return true
}

// htmlComments reports HTML comments that hold a message (at least
// minCommentLetters letters): invisible when rendered, read by a model.
func htmlComments(s string, rep report) bool {
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], "<!--")
		if k < 0 {
			return true
		}
		start := i + k
		e := strings.Index(s[start+4:], "-->")
		end := len(s)
		if e >= 0 {
			end = start + 4 + e + 3
		}
		i = end
		letters := 0
		for j := start + 4; j < end && letters < minCommentLetters; j++ {
			if isUpper(s[j]) || isLower(s[j]) {
				letters++
			}
		}
		if letters >= minCommentLetters && !rep("hidden_text", start, end) {
			return false
		}
	}
	return true
}
