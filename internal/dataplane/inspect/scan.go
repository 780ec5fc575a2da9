package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/detector"
)

// Part is one inspectable part of a message, as its protocol shows it:
// text, or a JSON document whose string values are scanned as texts.
type Part struct {
	// Where names the part in the message, for findings' locations
	// ("arguments", "content[0].text", "params.message").
	Where string
	// Text is the part's text, when it is text.
	Text string
	// JSON is the part's document, when it is JSON (then Text is unused).
	JSON json.RawMessage
}

// Edit replaces part Part of a message: with Text for a text part, with
// JSON for a JSON part.
type Edit struct {
	Part int
	Text string
	JSON json.RawMessage
}

// Finding is one thing a rule found. Location names where, never what.
type Finding struct {
	Rule     *Rule
	Detector string
	Kind     string
	Location string
	// Action is what the rule does about it (for a shadow rule, what it
	// would do).
	Action Action
}

// Name is the finding's name, "<detector>.<kind>".
func (f Finding) Name() string { return f.Detector + "." + f.Kind }

// Outcome is what inspecting one message found and what must happen to
// it.
type Outcome struct {
	Findings []Finding
	// Edits rewrite the message: enforced redactions and masks.
	Edits []Edit
	// Block is the first enforced rule that blocks: the message must not
	// pass (nil: it may, with Edits applied).
	Block *Rule
}

// Blocked reports whether an enforced rule blocks the message.
func (o *Outcome) Blocked() bool { return o.Block != nil }

func (o *Outcome) add(f Finding) {
	o.Findings = append(o.Findings, f)
	if f.Rule.Enforced() && f.Action == Block && o.Block == nil {
		o.Block = f.Rule
	}
}

// CarryWindow is how many bytes of the text streamed before a frame are
// scanned again with it, so that a match split across two frames is
// still found.
const CarryWindow = 512

// Carry is the tail of the text a stream has shown so far. The zero value
// starts a stream. It is not safe for concurrent use.
type Carry struct{ tail string }

// Options say how a message is inspected.
type Options struct {
	// Prefix starts every location ("frame 3 ", or "" ).
	Prefix string
	// Carry, when set, is the stream the message is a frame of: its
	// texts are scanned after the stream's carried tail, and the tail
	// moves on.
	Carry *Carry
	// Bytes is the size of the answer so far, for size ceilings (0: the
	// message's own parts are not an answer).
	Bytes int64
	// Rows turns on row ceilings (a result, not a frame).
	Rows bool
}

// maxFindings bounds the findings one message reports; what redaction
// and blocking do is not bounded by it.
const maxFindings = 256

// Scan runs rules' detectors, patterns and ceilings over parts (not their
// classifiers: see Classify) and returns what they found and what must
// happen to the message.
func Scan(rules []*Rule, parts []Part, o Options) *Outcome {
	out := &Outcome{}
	s := scan{rules: rules, out: out, opts: o}
	for i, p := range parts {
		if p.JSON != nil {
			s.json(i, p)
		} else {
			s.text(i, p)
		}
	}
	for _, r := range rules {
		if r.MaxBytes > 0 && o.Bytes > r.MaxBytes {
			out.add(Finding{Rule: r, Detector: "size", Kind: "ceiling", Action: ceilingAction(r),
				Location: fmt.Sprintf("%sanswer: %d bytes, ceiling %d", o.Prefix, o.Bytes, r.MaxBytes)})
		}
		if r.rows != nil && o.Rows {
			s.rows(r, parts)
		}
	}
	return out
}

// ceilingAction is what a rule does when a ceiling is passed: block, or
// flag (a rule whose action is redact or mask cannot have a ceiling).
func ceilingAction(r *Rule) Action {
	if r.Action == Block {
		return Block
	}
	return Flag
}

type scan struct {
	rules []*Rule
	out   *Outcome
	opts  Options
}

// rewrite collects the spans to rewrite in one text.
type rewrite struct {
	spans []detector.Span
	mask  bool // every span is masked (a redaction anywhere redacts all)
	seen  bool
}

func (w *rewrite) add(sp detector.Span, a Action) {
	w.spans = append(w.spans, sp)
	if !w.seen {
		w.mask, w.seen = a == Mask, true
	} else if a == Redact {
		w.mask = false
	}
}

// scanText runs every rule's scanner over text, reporting findings at
// where and collecting enforced redactions into w. With a carry, text is
// scanned after the carried tail.
func (s *scan) scanText(text, where string, w *rewrite) {
	scanned, skip := text, 0
	if c := s.opts.Carry; c != nil {
		scanned, skip = c.tail+text, len(c.tail)
		c.tail = tail(scanned, CarryWindow)
	}
	t := detector.NewText(scanned) // shared by the rules: one lower-cased copy
	for _, r := range s.rules {
		if r.scanner == nil {
			continue
		}
		r.scanner.ScanText(t, func(m detector.Match) bool {
			if m.End <= skip {
				return true // found in an earlier frame
			}
			start, end := max(m.Start-skip, 0), m.End-skip
			if len(s.out.Findings) < maxFindings {
				s.out.add(Finding{Rule: r, Detector: m.Detector, Kind: m.Kind, Action: r.Action,
					Location: s.opts.Prefix + where + "[" + strconv.Itoa(start) + ":" + strconv.Itoa(end) + "]"})
			} else if r.Enforced() && r.Action == Block && s.out.Block == nil {
				s.out.Block = r
			}
			if r.Enforced() && (r.Action == Redact || r.Action == Mask) {
				w.add(detector.Span{Start: start, End: end, Name: m.Name()}, r.Action)
			}
			return true
		})
	}
}

// tail returns the last n bytes of s, starting on a rune boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}

func (s *scan) text(i int, p Part) {
	var w rewrite
	s.scanText(p.Text, p.Where, &w)
	if len(w.spans) > 0 {
		s.out.Edits = append(s.out.Edits, Edit{Part: i, Text: detector.Rewrite(p.Text, w.spans, w.mask)})
	}
}

// leafEdit is a rewritten string value inside a JSON part.
type leafEdit struct {
	start, end int
	value      string
}

func (s *scan) json(i int, p Part) {
	var edits []leafEdit
	err := detector.Leaves(p.JSON, func(l detector.Leaf) bool {
		var w rewrite
		s.scanText(l.Value, location(p.Where, l.Path), &w)
		if len(w.spans) > 0 {
			edits = append(edits, leafEdit{start: l.Start, end: l.End, value: detector.Rewrite(l.Value, w.spans, w.mask)})
		}
		return true
	})
	if err != nil {
		// Not a document this package can walk (invalid, or nested too
		// deep): scan its bytes as text. What was found cannot be cut out
		// of it, so an enforced redaction withholds the message instead.
		var w rewrite
		s.scanText(string(p.JSON), p.Where, &w)
		if len(w.spans) > 0 {
			for _, f := range s.out.Findings {
				if f.Rule.Enforced() && (f.Action == Redact || f.Action == Mask) && s.out.Block == nil {
					s.out.Block = f.Rule
				}
			}
		}
		return
	}
	if len(edits) == 0 {
		return
	}
	var b bytes.Buffer
	b.Grow(len(p.JSON))
	pos := 0
	for _, e := range edits {
		b.Write(p.JSON[pos:e.start])
		enc, _ := json.Marshal(e.value) // a string always encodes
		b.Write(enc)
		pos = e.end
	}
	b.Write(p.JSON[pos:])
	s.out.Edits = append(s.out.Edits, Edit{Part: i, JSON: b.Bytes()})
}

// rows counts the items at r's path in every JSON part and every text part
// that is JSON, and reports the largest count over r's ceiling.
func (s *scan) rows(r *Rule, parts []Part) {
	most, where := -1, ""
	for _, p := range parts {
		doc := []byte(p.JSON)
		if doc == nil {
			t := bytes.TrimLeft([]byte(p.Text), " \t\r\n")
			if len(t) == 0 || t[0] != '{' && t[0] != '[' {
				continue
			}
			doc = []byte(p.Text)
		}
		n, found, err := detector.Count(doc, r.rows.path)
		if err != nil || !found {
			continue
		}
		if n > most {
			most, where = n, p.Where
		}
	}
	if most > r.rows.max {
		s.out.add(Finding{Rule: r, Detector: "rows", Kind: "ceiling", Action: ceilingAction(r),
			Location: fmt.Sprintf("%s%s at %s: %d items, ceiling %d", s.opts.Prefix, where, r.rows.path, most, r.rows.max)})
	}
}

// maxKeyInLocation bounds a member name quoted in a finding's location.
const maxKeyInLocation = 32

// location is where a string value lies, as a finding records it: the
// part and the path to the value. Member names come from the payload, so
// one that is long or looks like a credential is written "[…]": a
// location never carries what was found, nor a secret used as a key.
func location(where string, path []detector.PathElem) string {
	var clean []detector.PathElem
	for i, e := range path {
		if e.Key != "" && (len(e.Key) > maxKeyInLocation || detector.FirstSecret(e.Key) != "") {
			if clean == nil {
				clean = append([]detector.PathElem(nil), path...)
			}
			clean[i].Key = "[…]"
		}
	}
	if clean != nil {
		path = clean
	}
	return detector.FormatPath(where, path)
}

// PolicyNames returns the names enforced request findings put in Cedar's
// context.findings: each finding's detector and "<detector>.<kind>",
// sorted and without repeats.
func PolicyNames(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Rule.Enforced() {
			out = append(out, f.Detector, f.Name())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
