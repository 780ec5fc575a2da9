package detector

import (
	"bytes"
	"encoding/base64"
	"math"
	"regexp"
	"strings"
)

// secretRule is one kind of credential.
type secretRule struct {
	kind string
	// pre is a cheap test that must pass before re stops being skipped:
	// most texts hold no credential, and a regexp pass costs far more
	// than a substring search.
	pre   func(*Text) bool
	re    *regexp.Regexp
	check func(string) bool // optional, on each regexp match
	// find, instead of pre and re, scans for the kind by hand.
	find func(string) func(func(int, int) bool)
}

func has(sub string) func(*Text) bool {
	return func(t *Text) bool { return strings.Contains(t.s, sub) }
}

func hasFold(lowerSub string) func(*Text) bool {
	return func(t *Text) bool { return strings.Contains(t.Lower(), lowerSub) }
}

func hasAny(subs ...string) func(*Text) bool {
	return func(t *Text) bool {
		for _, sub := range subs {
			if strings.Contains(t.s, sub) {
				return true
			}
		}
		return false
	}
}

// secretRules are the credential detectors, each documented by its kind.
// They catch the credentials people paste into arguments and the ones
// tools leak in results; a secret in a format they do not know needs an
// operator pattern.
var secretRules = []secretRule{
	// A JWT (or any JWS): three base64url parts, the header starting
	// with {" encoded.
	{kind: "jwt", pre: has("eyJ"), re: regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)},
	// An HTTP bearer credential.
	{kind: "bearer", pre: hasFold("bearer"), re: regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}`)},
	// An HTTP Basic credential: base64 of "user:password" (checked, so
	// "basic understanding" is kept).
	{kind: "basic", pre: hasFold("basic"), re: regexp.MustCompile(`(?i)\bbasic\s+[A-Za-z0-9+/]{4,}={0,2}`), check: basicCredential},
	// A URL with a password in its user information
	// ("postgres://app:s3cret@db:5432/x").
	// Found by a hand-written scan (urlCredentials).
	{kind: "url_credentials", find: urlCredentials},
	// An AWS access key id (long-term AKIA, temporary ASIA).
	{kind: "aws_access_key", pre: hasAny("AKIA", "ASIA"), re: regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	// A PEM private key of any type.
	{kind: "private_key", pre: has("PRIVATE KEY-----"), re: regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----`)},
	// GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_).
	{kind: "github_token", pre: hasAny("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
		re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`)},
	// GitLab tokens: personal, deploy, runner, trigger, feed, OAuth and
	// the like (glpat-, gldt-, glrt-, glptt-, glft-, glsoat-, …).
	{kind: "gitlab_token", pre: has("gl"), re: regexp.MustCompile(`\bgl(?:pat|dt|rt|ptt|ft|soat|cbt|imt|oas|agent)-[A-Za-z0-9_-]{16,}`)},
	// Slack tokens (xoxb-, xoxp-, xoxa-, xoxo-, xoxr-, xoxs-).
	{kind: "slack_token", pre: has("xox"), re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	// Stripe secret and restricted keys, however short (sk_live_,
	// sk_test_, rk_live_, rk_test_).
	{kind: "stripe_key", pre: hasAny("k_live_", "k_test_"), re: regexp.MustCompile(`\b[rs]k_(?:live|test)_[A-Za-z0-9]{6,}`)},
	// This gateway's agent API keys and data-plane join credentials.
	{kind: "portcullis_api_key", pre: has("pck_"), re: regexp.MustCompile(`\bpck_[A-Za-z0-9_-]{6,}`)},
	{kind: "portcullis_join_credential", pre: has("pcj1_"), re: regexp.MustCompile(`\bpcj1_[A-Za-z0-9_.=-]{6,}`)},
	// A long random-looking token: 32 or more characters of the base64 or
	// hex alphabets with upper case, lower case and digits mixed (so not a
	// hex digest, UUID or word) and at least 4 bits of entropy per
	// character. Found by a hand-written scan (highEntropyRuns).
	{kind: "high_entropy", find: highEntropyRuns},
}

func secretKinds() []string {
	out := make([]string, len(secretRules))
	for i, r := range secretRules {
		out[i] = r.kind
	}
	return out
}

// SecretKinds lists the kinds of credential the secrets detector reports,
// in the order they are tried.
func SecretKinds() []string { return secretKinds() }

// minSecretLen is the shortest text a credential rule can match.
const minSecretLen = 8

// FirstSecret reports the kind of the first rule (in SecretKinds order)
// that finds a credential in s, or "" if none does.
func FirstSecret(s string) string {
	if len(s) < minSecretLen {
		return "" // no rule can match: skip the scan's allocations
	}
	kind := ""
	scanSecrets(NewText(s), all, false, func(m Match) bool {
		kind = m.Kind
		return false
	})
	return kind
}

// scanSecrets reports the credentials of the kinds in want as the secrets
// detector, and, with credential, every credential as the exfiltration
// detector's kind "credential", rule by rule: one pass serves both.
func scanSecrets(t *Text, want mask, credential bool, emit Emit) bool {
	s := t.s
	if len(s) < minSecretLen {
		return true
	}
	report := func(i, start, end int) bool {
		if want.has(i) && !emit(Match{Detector: Secrets, Kind: secretRules[i].kind, Start: start, End: end}) {
			return false
		}
		return !credential || emit(Match{Detector: Exfiltration, Kind: "credential", Start: start, End: end})
	}
	for i, r := range secretRules {
		if !want.has(i) && !credential {
			continue
		}
		if r.find != nil {
			for start, end := range r.find(s) {
				if !report(i, start, end) {
					return false
				}
			}
			continue
		}
		if !r.pre(t) {
			continue
		}
		for _, loc := range r.re.FindAllStringIndex(s, -1) {
			if r.check != nil && !r.check(s[loc[0]:loc[1]]) {
				continue
			}
			if !report(i, loc[0], loc[1]) {
				return false
			}
		}
	}
	return true
}

// urlCredentials yields URLs with a password in their user information
// ("postgres://app:s3cret@db:5432/x"): a scheme of at most 31 characters,
// "://", a user, ':', a non-empty password and '@', with no '/', '?', '#'
// or white space before the '@'. The span runs from the scheme to the '@'.
func urlCredentials(s string) func(func(int, int) bool) {
	return func(yield func(int, int) bool) {
		for i := 0; i < len(s); {
			k := strings.Index(s[i:], "://")
			if k < 0 {
				return
			}
			sep := i + k
			i = sep + 3
			start := sep
			for start > 0 && sep-start < 31 && (isAlnum(s[start-1]) || s[start-1] == '+' || s[start-1] == '.' || s[start-1] == '-') {
				start--
			}
			for start < sep && !isLetter(s[start]) {
				start++
			}
			if start == sep || !boundaryBefore(s, start) && start > 0 && isAlnum(s[start-1]) {
				continue
			}
			colon, at := -1, -1
			for j := sep + 3; j < len(s); j++ {
				c := s[j]
				if c == '@' {
					at = j
					break
				}
				if c == '/' || c == '?' || c == '#' || c <= ' ' {
					break
				}
				if c == ':' && colon < 0 {
					colon = j
				}
			}
			if colon < 0 || at < 0 || at == colon+1 {
				if at > 0 {
					i = at
				}
				continue
			}
			if !yield(start, at+1) {
				return
			}
			i = at + 1
		}
	}
}

// basicCredential reports whether m ("Basic <base64>") carries
// "user:password": base64 that decodes to printable text with a colon.
func basicCredential(m string) bool {
	f := strings.Fields(m)
	if len(f) != 2 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(f[1], "=")); err != nil {
			return false
		}
	}
	if !bytes.ContainsRune(b, ':') {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// tokenByte reports whether c belongs to the base64, base64url or hex
// alphabets (with padding).
func tokenByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '=' || c == '_' || c == '-'
}

// minHighEntropy is the shortest random-looking token reported.
const minHighEntropy = 32

// highEntropyRuns yields the maximal runs of token bytes of at least
// minHighEntropy that look random (see highEntropy).
func highEntropyRuns(s string) func(func(int, int) bool) {
	return func(yield func(int, int) bool) {
		for i := 0; i < len(s); {
			if !tokenByte(s[i]) {
				i++
				continue
			}
			j := i
			for j < len(s) && tokenByte(s[j]) {
				j++
			}
			if j-i >= minHighEntropy && highEntropy(s[i:j]) && !yield(i, j) {
				return
			}
			i = j
		}
	}
}

// highEntropy reports whether s mixes upper case, lower case and digits and
// has at least 4 bits of Shannon entropy per character.
func highEntropy(s string) bool {
	var upper, lower, digit bool
	var counts [256]int
	for i := 0; i < len(s); i++ {
		c := s[i]
		counts[c]++
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z':
			lower = true
		case '0' <= c && c <= '9':
			digit = true
		}
	}
	if !upper || !lower || !digit {
		return false
	}
	n := float64(len(s))
	var h float64
	for _, k := range counts {
		if k > 0 {
			p := float64(k) / n
			h -= p * math.Log2(p)
		}
	}
	return h >= 4.0
}

// equalFold reports whether s equals lower (ASCII, lower case) ignoring
// ASCII case.
func equalFold(s, lower string) bool {
	for j := 0; j < len(lower); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[j] {
			return false
		}
	}
	return true
}
