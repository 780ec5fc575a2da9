package argjson

import "strings"

// MaxSegmentBytes bounds one path segment (a caller-chosen key) in
// messages.
const MaxSegmentBytes = 64

// Segment escapes key as a JSON Pointer segment ("~" → "~0", "/" → "~1")
// and bounds it to MaxSegmentBytes, for naming a caller's key in a message.
func Segment(key string) string {
	key = strings.ReplaceAll(key, "~", "~0")
	key = strings.ReplaceAll(key, "/", "~1")
	return Truncate(key, MaxSegmentBytes)
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut
// with "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
