package limits

// CheckCedar checks a policy set's source against PolicySetSource,
// PoliciesPerSet, CedarNesting and CedarDepth in one pass over its bytes,
// without parsing it, so that no Cedar parser, validator or evaluator ever
// sees a source that would make it recurse or allocate without bound. The
// error names the first position over a limit (field "source").
//
// The scan tokenizes as cedar-go does where it matters: string literals
// (with backslash escapes), line and block comments are skipped, so a
// bracket or operator inside them counts for nothing. For any other input
// cedar-go refuses before parsing.
//
// The depth is an upper bound on the depth of the expression tree Cedar
// builds for a policy (the one its evaluator compiles: the scope and every
// when/unless clause joined by "&&"). Within one pair of brackets, an
// expression is a tree of if/then/else, "||" and "&&" over operands, and
// every operand is a chain of the other operators over atoms, an atom being
// a literal, a name or a bracketed expression. No path from the root down
// passes more if/&&/|| nodes than there are of those keywords, nor more
// other nodes than one operand has operators, so
//
//	depth ≤ (if, then, else, &&, ||) + max over operands of (operators + deepest atom)
//
// where "." counts twice (a "has a.b.c" chain builds two nodes per dot),
// a bracketed atom counts its own bound plus one, and commas and
// semicolons separate siblings. The bound is loose for long operands and
// exact for the chains an attack uses ("((((…", "!!!!…", "a || a || …").
func CheckCedar(src []byte) error {
	if len(src) > PolicySetSource {
		return exceeded("source", "at most %d bytes (this one has %d); split the policies into several sets", PolicySetSource, len(src))
	}
	sc := cedarScanner{src: src}
	if off, msg := sc.scan(); msg != "" {
		line, col := position(src, off)
		return &Error{Field: "source", Line: line, Column: col, Msg: msg}
	}
	return nil
}

// cedarLevel is the part of the bound for one pair of brackets (or the
// policy at the top) seen so far.
type cedarLevel struct {
	// below is the running bound of the enclosing levels when this one
	// opened: the parser's recursion at this point.
	below int
	// done is the largest bound of this level's finished siblings.
	done int
	// keywords counts if, then, else, && and || (and when/unless, twice)
	// in the current sibling.
	keywords int
	// best is the largest operators+atom of the current sibling's
	// finished operands.
	best int
	// ops and atom are the current operand's operators and deepest atom.
	ops, atom int
}

// operand is the bound of the current operand.
func (l *cedarLevel) operand() int { return l.ops + max(l.atom, 1) }

// sibling is the bound of the current sibling expression.
func (l *cedarLevel) sibling() int { return l.keywords + max(l.best, l.operand()) }

// bound is the bound of the whole level so far.
func (l *cedarLevel) bound() int { return max(l.done, l.sibling()) }

// running is the bound along the open levels: how deep the parser may be.
func (l *cedarLevel) running() int { return l.below + l.keywords + l.ops + 1 }

func (l *cedarLevel) endOperand() {
	l.best = max(l.best, l.operand())
	l.ops, l.atom = 0, 0
}

func (l *cedarLevel) endSibling() {
	l.done = max(l.done, l.sibling())
	l.keywords, l.best, l.ops, l.atom = 0, 0, 0, 0
}

// scopeNodes is what a policy's scope adds to its depth: one "&&" node per
// scope constraint, plus the constant the three leave when unconstrained.
const scopeNodes = 4

type cedarScanner struct {
	src      []byte
	levels   []cedarLevel
	policies int
	// bounds, when not nil, receives each policy's bound (for tests).
	bounds *[]int
}

func (s *cedarScanner) top() *cedarLevel { return &s.levels[len(s.levels)-1] }

// scan returns the offset and message of the first limit exceeded, or "".
func (s *cedarScanner) scan() (int, string) {
	src := s.src
	s.levels = append(s.levels[:0], cedarLevel{})
	sawPolicy := false
	for i := 0; i < len(src); {
		c := src[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
			continue
		case c == '"':
			i = skipCedarString(src, i)
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			i = skipBlockComment(src, i+2)
			continue
		case c == '(' || c == '[' || c == '{':
			sawPolicy = true
			if len(s.levels) > CedarNesting {
				return start, nestingMsg
			}
			s.levels = append(s.levels, cedarLevel{below: s.top().running()})
			i++
		case c == ')' || c == ']' || c == '}':
			i++
			if len(s.levels) == 1 {
				continue // unbalanced: cedar-go refuses it before compiling
			}
			inner := s.top().bound() + 1
			s.levels = s.levels[:len(s.levels)-1]
			t := s.top()
			t.atom = max(t.atom, inner)
			if t.below+t.sibling() > CedarDepth {
				return start, depthMsg
			}
			continue
		case c == ',':
			s.top().endSibling()
			i++
			continue
		case c == ';':
			i++
			if len(s.levels) > 1 {
				continue // cedar-go refuses a ';' inside brackets
			}
			if b := s.top().bound() + scopeNodes; s.bounds != nil {
				*s.bounds = append(*s.bounds, b)
			} else if b > CedarDepth {
				return start, depthMsg
			}
			s.levels[0] = cedarLevel{}
			s.policies++
			sawPolicy = false
			if s.policies > PoliciesPerSet {
				return start, policiesMsg
			}
			continue
		case isIdentStart(c):
			for i < len(src) && isIdentByte(src[i]) {
				i++
			}
			sawPolicy = true
			switch string(src[start:i]) {
			case "if", "then", "else":
				s.keyword(1)
			case "when", "unless":
				s.keyword(2) // an "&&" node, and a "!" for unless
			case "in", "has", "like", "is":
				s.top().ops++
			default:
				continue
			}
		case c >= '0' && c <= '9':
			for i < len(src) && src[i] >= '0' && src[i] <= '9' {
				i++
			}
			continue
		case (c == '&' || c == '|') && i+1 < len(src) && src[i+1] == c:
			i += 2
			s.keyword(1)
		case c == '=' && i+1 < len(src) && src[i+1] == '=':
			i += 2
			s.top().ops++
		case c == '!' || c == '<' || c == '>':
			i++
			if i < len(src) && src[i] == '=' {
				i++
			}
			s.top().ops++
		case c == '+' || c == '-' || c == '*':
			i++
			s.top().ops++
		case c == '.':
			i++
			s.top().ops += 2
		default:
			i++ // ':', '::', '@' and anything cedar-go refuses
			continue
		}
		if s.top().running() > CedarDepth {
			return start, depthMsg
		}
	}
	if sawPolicy && s.policies+1 > PoliciesPerSet {
		return len(src), policiesMsg
	}
	return 0, ""
}

// keyword counts an if/then/else/&&/|| (weight 1) or when/unless (weight
// 2): it ends the current operand.
func (s *cedarScanner) keyword(weight int) {
	t := s.top()
	t.endOperand()
	t.keywords += weight
}

var (
	nestingMsg  = "brackets nest more than " + itoa(CedarNesting) + " levels deep; flatten the expression"
	depthMsg    = "the expression is deeper than " + itoa(CedarDepth) + " levels (counting brackets, operators and when/unless clauses); split it into several policies, or test membership with a set's .contains() or a value list instead of long || chains"
	policiesMsg = "more than " + itoa(PoliciesPerSet) + " policies in one set; split them into several sets"
)

// skipCedarString returns the offset after the string literal starting at
// src[i] == '"' (or len(src) if it does not end). A backslash escapes the
// next byte; the rest of any escape cedar-go accepts holds no quote.
func skipCedarString(src []byte, i int) int {
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(src)
}

// skipBlockComment returns the offset after the "*/" that ends a comment
// whose text starts at src[i], or len(src).
func skipBlockComment(src []byte, i int) int {
	for ; i+1 < len(src); i++ {
		if src[i] == '*' && src[i+1] == '/' {
			return i + 2
		}
	}
	return len(src)
}

// isIdentStart and isIdentByte read identifiers as ASCII letters, digits
// and '_'. cedar-go also accepts Unicode letters; reading those as
// separators only splits an identifier, so a keyword may be counted that
// is none (a bound a little too high), never missed.
func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdentByte(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
