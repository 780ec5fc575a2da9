package detector

import (
	"fmt"
	"slices"
	"strings"
)

// Detector names.
const (
	Secrets      = "secrets"
	PII          = "pii"
	Exfiltration = "exfiltration"
	Injection    = "injection"
	Pattern      = "pattern"
)

// Match is one thing a detector found: which detector, what kind, and the
// byte offsets [Start, End) in the text it scanned. It never holds the text.
type Match struct {
	Detector string
	Kind     string
	Start    int
	End      int
}

// Name is the finding's name, "<detector>.<kind>".
func (m Match) Name() string { return m.Detector + "." + m.Kind }

// Emit receives matches; returning false stops the scan.
type Emit func(Match) bool

// kinds lists each built-in text detector's kinds, in the order they are
// tried. A kind's index is its bit in a selection mask.
var kinds = map[string][]string{
	Secrets: secretKinds(),
	PII:     {"email", "phone", "payment_card", "iban", "national_id"},
	Exfiltration: {
		"url_payload", "data_uri", "image_link", "encoded_blob", "credential",
	},
	Injection: {"instruction", "unicode_tags", "hidden_text"},
}

// Detectors lists the built-in text detectors (not pattern, whose kinds
// operators name).
func Detectors() []string { return []string{Secrets, PII, Exfiltration, Injection} }

// Kinds returns the kinds a built-in text detector reports, nil for a name
// that is not one.
func Kinds(detector string) []string { return slices.Clone(kinds[detector]) }

// mask is a selection of one detector's kinds: bit i is kinds[d][i].
type mask uint64

const all mask = ^mask(0)

func (m mask) has(i int) bool { return m&(1<<uint(i)) != 0 }

// selection is which kinds of each built-in detector a Scanner runs.
type selection struct {
	secrets, pii, exfil, injection mask
}

// parseSelection reads names such as "pii" (every kind) or "pii.email"
// (one kind).
func parseSelection(names []string) (selection, error) {
	var s selection
	for _, n := range names {
		det, kind, one := strings.Cut(n, ".")
		ks, ok := kinds[det]
		if !ok {
			return s, fmt.Errorf("unknown detector %q (known: %s)", n, strings.Join(Detectors(), ", "))
		}
		m := all
		if one {
			i := slices.Index(ks, kind)
			if i < 0 {
				return s, fmt.Errorf("detector %s has no kind %q (its kinds: %s)", det, kind, strings.Join(ks, ", "))
			}
			m = 1 << uint(i)
		}
		switch det {
		case Secrets:
			s.secrets |= m
		case PII:
			s.pii |= m
		case Exfiltration:
			s.exfil |= m
		case Injection:
			s.injection |= m
		}
	}
	return s, nil
}

// ValidName reports, as an error, why name does not select a built-in text
// detector or one of its kinds ("pii", "pii.email"); nil when it does.
func ValidName(name string) error {
	_, err := parseSelection([]string{name})
	return err
}

// Scanner runs a selection of detectors over texts. It is immutable and
// safe for concurrent use.
type Scanner struct {
	sel      selection
	patterns []*Pat
}

// NewScanner returns a scanner for the named built-in detectors or kinds
// (see ValidName) and the operator patterns.
func NewScanner(names []string, patterns []*Pat) (*Scanner, error) {
	sel, err := parseSelection(names)
	if err != nil {
		return nil, err
	}
	return &Scanner{sel: sel, patterns: slices.Clone(patterns)}, nil
}

// Empty reports whether the scanner runs nothing.
func (s *Scanner) Empty() bool {
	return s == nil || s.sel == (selection{}) && len(s.patterns) == 0
}

// Text is a text to scan, with its ASCII-lower-cased copy made once, on
// first use, for the case-insensitive searches of every detector and
// every Scanner that scans it. It is not safe for concurrent use.
type Text struct {
	s       string
	lower   string
	lowered bool
}

// NewText returns s to scan.
func NewText(s string) *Text { return &Text{s: s} }

// String is the text.
func (t *Text) String() string { return t.s }

// Lower is the text with ASCII letters in lower case (same length, same
// offsets).
func (t *Text) Lower() string {
	if !t.lowered {
		t.lower, t.lowered = asciiLower(t.s), true
	}
	return t.lower
}

// Scan reports every selected thing found in text, detector by detector
// (so not in offset order), until emit returns false. It returns false
// when emit stopped it.
func (s *Scanner) Scan(text string, emit Emit) bool { return s.ScanText(NewText(text), emit) }

// ScanText is Scan of a Text, which several scanners may share.
func (s *Scanner) ScanText(t *Text, emit Emit) bool {
	if s == nil || t.s == "" {
		return true
	}
	credential := s.sel.exfil.has(exfilCredential)
	if (s.sel.secrets != 0 || credential) && !scanSecrets(t, s.sel.secrets, credential, emit) {
		return false
	}
	if s.sel.pii != 0 && !scanPII(t.s, s.sel.pii, emit) {
		return false
	}
	if s.sel.exfil != 0 && !scanExfiltration(t, s.sel.exfil, emit) {
		return false
	}
	if s.sel.injection != 0 && !scanInjection(t, s.sel.injection, emit) {
		return false
	}
	for _, p := range s.patterns {
		if !p.scan(t.s, emit) {
			return false
		}
	}
	return true
}
