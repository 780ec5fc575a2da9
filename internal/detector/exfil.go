package detector

import "strings"

// Exfiltration kind indexes (their order in kinds[Exfiltration]).
const (
	exfilURLPayload = iota
	exfilDataURI
	exfilImageLink
	exfilEncodedBlob
	exfilCredential
)

// Thresholds of the exfiltration shapes.
const (
	// MinURLPayload is the shortest run of encoded-looking characters in
	// a URL's path or query that counts as data carried out in the URL.
	MinURLPayload = 64
	// MaxURLQuery is the longest query a URL may have before it counts as
	// data carried out in the URL, whatever it looks like.
	MaxURLQuery = 512
	// MinEncodedBlob is the shortest base64 or hex run that counts as an
	// encoded blob (192 bytes of base64, 128 of hex).
	MinEncodedBlob = 256
	// maxImageAlt bounds the alt text of a markdown image link.
	maxImageAlt = 1024
	// maxTag bounds an HTML tag searched for an image source.
	maxTag = 4096
)

// scanExfiltration reports exfiltration-shaped values: data carried in a
// URL, data: URIs, image links that make a client fetch an outside URL,
// long encoded blobs and credentials.
func scanExfiltration(t *Text, want mask, emit Emit) bool {
	s := t.s
	rep := func(kind string, start, end int) bool {
		return emit(Match{Detector: Exfiltration, Kind: kind, Start: start, End: end})
	}
	if want.has(exfilURLPayload) && !urlPayloads(t, rep) {
		return false
	}
	if want.has(exfilDataURI) && !dataURIs(t, rep) {
		return false
	}
	if want.has(exfilImageLink) && !imageLinks(t, rep) {
		return false
	}
	if want.has(exfilEncodedBlob) && !encodedBlobs(s, rep) {
		return false
	}
	return true
}

type report func(kind string, start, end int) bool

// urlEnd is where a URL starting at i ends: the first byte that cannot be
// in a URL written in text.
func urlEnd(s string, i int) int {
	for j := i; j < len(s); j++ {
		switch c := s[j]; {
		case c <= ' ', c == '"', c == '\'', c == '<', c == '>', c == '`', c == ')', c == ']', c == '\\', c == 0x7f:
			return j
		}
	}
	return len(s)
}

// schemeAt reports the length of "http://" or "https://" (any case) at i,
// or 0.
func schemeAt(s string, i int) int {
	switch {
	case i+7 <= len(s) && equalFold(s[i:i+7], "http://"):
		return 7
	case i+8 <= len(s) && equalFold(s[i:i+8], "https://"):
		return 8
	}
	return 0
}

// urlPayloads reports http(s) URLs whose path or query carries a long run
// of encoded-looking characters, or whose query is very long.
func urlPayloads(t *Text, rep report) bool {
	s, lower := t.s, t.Lower()
	for i := 0; i < len(s); {
		k := strings.Index(lower[i:], "http")
		if k < 0 {
			return true
		}
		start := i + k
		n := schemeAt(s, start)
		if n == 0 {
			i = start + 4
			continue
		}
		end := urlEnd(s, start+n)
		if urlCarriesData(s[start+n:end]) && !rep("url_payload", start, end) {
			return false
		}
		i = max(end, start+n)
	}
	return true
}

// urlCarriesData judges a URL after its scheme: host, path, query.
func urlCarriesData(u string) bool {
	slash := strings.IndexAny(u, "/?#")
	if slash < 0 {
		return false
	}
	rest := u[slash:]
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		query := rest[q+1:]
		if h := strings.IndexByte(query, '#'); h >= 0 {
			query = query[:h]
		}
		if len(query) > MaxURLQuery {
			return true
		}
	}
	for i := 0; i < len(rest); {
		if !urlDataByte(rest[i]) {
			i++
			continue
		}
		j := i
		for j < len(rest) && urlDataByte(rest[j]) {
			j++
		}
		if j-i >= MinURLPayload && encodedLike(rest[i:j]) {
			return true
		}
		i = j
	}
	return false
}

// urlDataByte reports whether c can be part of encoded data inside a URL
// path segment or query value (base64, base64url, hex, percent escapes).
func urlDataByte(c byte) bool {
	return isAlnum(c) || c == '+' || c == '=' || c == '_' || c == '-' || c == '%'
}

// encodedLike reports whether a run looks like encoded data rather than a
// word or a path: all hex digits, or upper case, lower case and digits
// mixed with high entropy.
func encodedLike(run string) bool {
	hex := true
	for i := 0; i < len(run); i++ {
		c := run[i]
		if !isDigit(c) && !('a' <= c && c <= 'f') && !('A' <= c && c <= 'F') {
			hex = false
			break
		}
	}
	if hex {
		return true
	}
	return highEntropy(run)
}

// dataURIs reports data: URIs with a media type ("data:text/html;base64,…").
func dataURIs(t *Text, rep report) bool {
	s, lower := t.s, t.Lower()
	for i := 0; i < len(s); {
		k := strings.Index(lower[i:], "data:")
		if k < 0 {
			return true
		}
		start := i + k
		i = start + 5
		if !boundaryBefore(s, start) {
			continue
		}
		j := start + 5
		for j < len(s) && (isAlnum(s[j]) || s[j] == '-') {
			j++
		}
		if j == start+5 || j >= len(s) || s[j] != '/' {
			continue
		}
		j++
		m := j
		for j < len(s) && (isAlnum(s[j]) || contains(".+-", s[j])) {
			j++
		}
		if j == m || j >= len(s) || (s[j] != ';' && s[j] != ',') {
			continue
		}
		end := urlEnd(s, j)
		if !rep("data_uri", start, end) {
			return false
		}
		i = end
	}
	return true
}

// imageLinks reports markdown images (![alt](http…)) and HTML <img> tags
// whose source is an absolute http(s) URL: a client that renders them
// fetches the URL, carrying whatever it holds to that host.
func imageLinks(t *Text, rep report) bool {
	s, lower := t.s, t.Lower()
	// Markdown. close is the next "](" and bad the next '[' or newline
	// (which the alt text cannot hold) at or after the candidate's alt
	// text, kept across candidates so the scan stays linear.
	close, bad := -1, -1
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], "![")
		if k < 0 {
			break
		}
		start := i + k
		i = start + 2
		if close < start+2 {
			c := strings.Index(s[start+2:], "](")
			if c < 0 {
				break
			}
			close = start + 2 + c
		}
		if bad < start+2 {
			bad = len(s)
			if b := strings.IndexAny(s[start+2:], "\n["); b >= 0 {
				bad = start + 2 + b
			}
		}
		if close-start-2 > maxImageAlt || bad < close {
			continue
		}
		u := close + 2
		if u < len(s) && s[u] == '<' {
			u++
		}
		if schemeAt(s, u) == 0 {
			continue
		}
		end := urlEnd(s, u)
		if end < len(s) && s[end] == ')' {
			end++
		}
		if !rep("image_link", start, end) {
			return false
		}
		i = end
	}
	// HTML.
	for i := 0; i < len(s); {
		k := strings.Index(lower[i:], "<img")
		if k < 0 {
			return true
		}
		start := i + k
		limit := min(len(s), start+maxTag)
		gt := strings.IndexByte(s[start:limit], '>')
		tagEnd := limit
		if gt >= 0 {
			tagEnd = start + gt + 1
		}
		i = tagEnd
		tag, ltag := s[start:tagEnd], lower[start:tagEnd]
		src := strings.Index(ltag, "src")
		for src >= 0 {
			j := src + 3
			for j < len(tag) && tag[j] == ' ' {
				j++
			}
			if j < len(tag) && tag[j] == '=' {
				j++
				for j < len(tag) && (tag[j] == ' ' || tag[j] == '"' || tag[j] == '\'') {
					j++
				}
				if schemeAt(tag, j) > 0 {
					if !rep("image_link", start, tagEnd) {
						return false
					}
					break
				}
			}
			next := strings.Index(ltag[src+3:], "src")
			if next < 0 {
				break
			}
			src += 3 + next
		}
	}
	return true
}

// base64Byte reports whether c is in the base64 or base64url alphabet.
func base64Byte(c byte) bool {
	return isAlnum(c) || c == '+' || c == '/' || c == '_' || c == '-'
}

// encodedBlobs reports runs of at least MinEncodedBlob base64 or hex
// characters (padding included). A base64 run must mix upper case, lower
// case and digits, which encoded binary does and identifiers rarely do.
func encodedBlobs(s string, rep report) bool {
	for i := 0; i < len(s); {
		if !base64Byte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && base64Byte(s[j]) {
			j++
		}
		end := j
		for end < len(s) && end-j < 2 && s[end] == '=' {
			end++
		}
		if j-i >= MinEncodedBlob && blobLike(s[i:j]) && !rep("encoded_blob", i, end) {
			return false
		}
		i = end
	}
	return true
}

func blobLike(run string) bool {
	var upper, lower, digit, nonHex bool
	for i := 0; i < len(run); i++ {
		c := run[i]
		switch {
		case isUpper(c):
			upper = true
			nonHex = nonHex || c > 'F'
		case isLower(c):
			lower = true
			nonHex = nonHex || c > 'f'
		case isDigit(c):
			digit = true
		default:
			nonHex = true
		}
	}
	if !nonHex {
		return digit
	}
	return upper && lower && digit
}
