package detector

import "strings"

// PII kind indexes (their order in kinds[PII]).
const (
	piiEmail = iota
	piiPhone
	piiCard
	piiIBAN
	piiNationalID
)

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isUpper(c) || isLower(c) }

// wordByte reports whether c continues a word: a letter, a digit or '_'.
func wordByte(c byte) bool { return isAlnum(c) || c == '_' }

// boundaryBefore reports whether a token starting at i starts a word.
func boundaryBefore(s string, i int) bool { return i == 0 || !wordByte(s[i-1]) }

// boundaryAfter reports whether a token ending at i ends a word.
func boundaryAfter(s string, i int) bool { return i >= len(s) || !wordByte(s[i]) }

// scanPII reports personal data of the kinds in want.
func scanPII(s string, want mask, emit Emit) bool {
	p := pii{s: s, want: want, emit: emit}
	if want.has(piiEmail) && !p.emails() {
		return false
	}
	if want.has(piiIBAN) && !p.ibans() {
		return false
	}
	if want.has(piiPhone) && !p.phones() {
		return false
	}
	if (want.has(piiCard) || want.has(piiNationalID)) && !p.numbers() {
		return false
	}
	return true
}

type pii struct {
	s    string
	want mask
	emit Emit
}

func (p *pii) report(kind string, start, end int) bool {
	return p.emit(Match{Detector: PII, Kind: kind, Start: start, End: end})
}

// Email addresses: a local part of at most 64 bytes, '@', a domain of at
// most 253 bytes with a dot and an alphabetic top-level label.
const (
	maxEmailLocal  = 64
	maxEmailDomain = 253
)

func emailLocalByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func domainByte(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

func (p *pii) emails() bool {
	s := p.s
	for i := 0; i < len(s); {
		at := strings.IndexByte(s[i:], '@')
		if at < 0 {
			return true
		}
		at += i
		i = at + 1
		l := at
		for l > 0 && at-l < maxEmailLocal && emailLocalByte(s[l-1]) {
			l--
		}
		for l < at && s[l] == '.' {
			l++
		}
		if l == at {
			continue
		}
		r := at + 1
		for r < len(s) && r-at-1 < maxEmailDomain && domainByte(s[r]) {
			r++
		}
		for r > at+1 && (s[r-1] == '.' || s[r-1] == '-') {
			r--
		}
		if !emailDomain(s[at+1 : r]) {
			continue
		}
		if !p.report("email", l, r) {
			return false
		}
		i = r
	}
	return true
}

// emailDomain reports whether d is a dotted name with non-empty labels and
// an alphabetic top-level label of at least two letters.
func emailDomain(d string) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 || strings.Contains(d, "..") || d[0] == '-' {
		return false
	}
	tld := d[dot+1:]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if !isUpper(tld[i]) && !isLower(tld[i]) {
			return false
		}
	}
	return true
}

// Phone numbers: international ones written with a leading '+' (8 to 15
// digits, E.164's range, with single spaces, dashes, dots or parentheses
// between them), and North American ones written with separators.
func (p *pii) phones() bool {
	s := p.s
	for i := 0; i < len(s); {
		plus := strings.IndexByte(s[i:], '+')
		if plus < 0 {
			break
		}
		plus += i
		i = plus + 1
		if plus+1 >= len(s) || !isDigit(s[plus+1]) || !boundaryBefore(s, plus) {
			continue
		}
		digits, j, end := 0, plus+1, plus+1
		for j < len(s) && digits <= 15 {
			c := s[j]
			switch {
			case isDigit(c):
				digits++
				j++
				end = j
				continue
			case (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && j+1 < len(s) &&
				(isDigit(s[j+1]) || s[j+1] == '('):
				j++
				continue
			}
			break
		}
		if digits < 8 || digits > 15 || !boundaryAfter(s, end) {
			i = max(i, end)
			continue
		}
		if !p.report("phone", plus, end) {
			return false
		}
		i = end
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '(' && !isDigit(s[i]) || !boundaryBefore(s, i) {
			continue
		}
		if end, ok := nanp(s, i); ok {
			if !p.report("phone", i, end) {
				return false
			}
			i = end - 1
		}
	}
	return true
}

// nanp checks for a North American number written with separators at i:
// (212) 555-0100, (212)555-0100, 212-555-0100 or 212.555.0100.
func nanp(s string, i int) (int, bool) {
	j := i
	if s[j] == '(' {
		if j+5 > len(s) || !areaCode(s[j+1:j+4]) || s[j+4] != ')' {
			return 0, false
		}
		j += 5
		if j < len(s) && s[j] == ' ' {
			j++
		}
	} else {
		if j+4 > len(s) || !areaCode(s[j:j+3]) || (s[j+3] != '-' && s[j+3] != '.') {
			return 0, false
		}
		j += 4
	}
	if j+8 > len(s) || !areaCode(s[j:j+3]) || (s[j+3] != '-' && s[j+3] != '.') || !allDigits(s[j+4:j+8]) || !boundaryAfter(s, j+8) {
		return 0, false
	}
	return j + 8, true
}

// areaCode reports whether s is three digits, the first 2-9 (the shape of
// a North American area code and exchange).
func areaCode(s string) bool { return s[0] >= '2' && s[0] <= '9' && allDigits(s) }

// group is a run of digits [start, end) inside a number written in groups.
type group struct{ start, end int }

func (g group) len() int { return g.end - g.start }

// numberSep reports whether c may separate the groups of a written number.
func numberSep(c byte) bool { return c == ' ' || c == '-' || c == '.' }

// maxGroups bounds the digit groups of one written number held at once: a
// longer run ("1 2 3 4 …") is checked in chunks that overlap by enough
// groups for any card to fit across the seam.
const maxGroups = 64

// numbers finds every number written as digit groups separated by single
// spaces, dashes or dots, and checks it, and its sub-sequences of groups,
// for payment cards and national ids.
func (p *pii) numbers() bool {
	s := p.s
	groups := make([]group, 0, maxGroups)
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			if p.want.has(piiNationalID) && (s[i] == 'X' || s[i] == 'Y' || s[i] == 'Z') && boundaryBefore(s, i) {
				if end, ok := spanishNIE(s, i); ok {
					if !p.report("national_id", i, end) {
						return false
					}
					i = end
					continue
				}
			}
			i++
			continue
		}
		if !boundaryBefore(s, i) {
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			continue
		}
		groups = groups[:0]
		j, first, after := i, true, -1
		for {
			k := j
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			groups = append(groups, group{j, k})
			more := k+1 < len(s) && numberSep(s[k]) && isDigit(s[k+1])
			if more && len(groups) < maxGroups {
				j = k + 1
				continue
			}
			end, ok := p.number(groups, first, after)
			if !ok {
				return false
			}
			if !more {
				j = max(end, k)
				break
			}
			// Keep the groups a card could still span across the seam; a
			// window must then end in a new group.
			n := copy(groups, groups[len(groups)-(maxCardDigits-1):])
			groups = groups[:n]
			first, after, j = false, k, k+1
		}
		i = j
	}
	return true
}

// number checks one written number (its groups, in order; first when they
// start it) and returns where scanning continues; false when emit stopped
// the scan. Card windows must end after byte after.
func (p *pii) number(groups []group, first bool, after int) (int, bool) {
	s := p.s
	head, last := groups[0], groups[len(groups)-1]
	if first && p.want.has(piiNationalID) {
		if end, ok := fixedNationalID(s, head.start); ok {
			return end, p.report("national_id", head.start, end)
		}
		if end, ok := groupedNationalID(s, groups); ok {
			return end, p.report("national_id", head.start, end)
		}
	}
	if !p.want.has(piiCard) {
		return last.end, true
	}
	openEnd := boundaryAfter(s, last.end)
	var buf [maxCardDigits]byte
	for a := 0; a < len(groups); a++ {
		n := 0
		for b := a; b < len(groups); b++ {
			g := groups[b]
			if n+g.len() > maxCardDigits {
				break
			}
			n += copy(buf[n:], s[g.start:g.end])
			if n >= issuerDigits && b == a || n >= issuerDigits && n-g.len() < issuerDigits {
				// The window's first digits are known now, and every longer
				// window from a shares them.
				if !anyIssuer(buf[:issuerDigits]) {
					break
				}
			}
			if n < minCardDigits || g.end <= after || (b == len(groups)-1 && !openEnd) {
				continue
			}
			if (a > 0 || !first) && s[groups[a].start-1] != ' ' && s[groups[a].start-1] != '-' {
				continue
			}
			if paymentCard(buf[:n]) {
				if !p.report("payment_card", groups[a].start, g.end) {
					return 0, false
				}
				a = b
				break
			}
		}
	}
	return last.end, true
}
