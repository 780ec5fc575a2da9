package detector

import "strings"

// Instructions aimed at an AI agent that tool output has no business
// carrying, matched word by word (ASCII letters, any case, words separated
// by white space only):
//
//	ignore|disregard|forget|override|bypass|skip
//	    [all|any|every|the|your|my|these|those|of]{0,3}
//	    previous|prior|above|earlier|preceding|former|original|system|developer|safety
//	    instruction(s)|direction(s)|prompt(s)|rules|guidelines|message(s)|context|constraints
//	ignore|disregard|forget  all|everything  (you were told|you have been told|above|before)
//	you are now [in]  dan|jailbroken|unrestricted|(developer mode)|(a|an unfiltered)
//	new|updated|real|actual [system] instruction(s) ':'
//	do not  tell|inform|alert  the user
//	do not  mention|reveal [this|it] to the user
//	reveal|print|output|repeat|show|leak  your|the  system|hidden|initial  prompt|instructions
//
// and chat-template control tokens: <|im_start|>, <|im_end|>, <|system|>,
// <|assistant|>, <|user|>, <|endoftext|>, [INST], [/INST], <<SYS>>,
// <</SYS>>, <system>, </system>, <assistant>, </assistant>.
//
// A hand-written matcher instead of one regular expression: the
// alternation costs Go's regexp about a microsecond per byte, this a few
// nanoseconds, and both are linear.

var (
	verbsOverride = []string{"ignore", "disregard", "forget", "override", "bypass", "skip"}
	fillers       = []string{"all", "any", "every", "the", "your", "my", "these", "those", "of"}
	qualifiers    = []string{"previous", "prior", "above", "earlier", "preceding", "former", "original", "system", "developer", "safety"}
	targets       = []string{"instruction", "instructions", "direction", "directions", "prompt", "prompts", "rules",
		"guidelines", "message", "messages", "context", "constraints"}
	verbsForget = []string{"ignore", "disregard", "forget"}
	roles       = []string{"dan", "jailbroken", "unrestricted"}
	newish      = []string{"new", "updated", "real", "actual"}
	tellVerbs   = []string{"tell", "inform", "alert"}
	mentionVerb = []string{"mention", "reveal"}
	leakVerbs   = []string{"reveal", "print", "output", "repeat", "show", "leak"}
	yourThe     = []string{"your", "the"}
	hiddenKinds = []string{"system", "hidden", "initial"}
	promptish   = []string{"prompt", "instructions"}
	thisIt      = []string{"this", "it"}
	instruction = []string{"instruction", "instructions"}

	templateTokens = []string{"[inst]", "[/inst]", "<<sys>>", "<</sys>>", "<system>", "</system>", "<assistant>", "</assistant>"}
	pipeTokens     = []string{"im_start", "im_end", "system", "assistant", "user", "endoftext"}
)

// maxWord bounds a word compared with a phrase's words (every one is
// shorter).
const maxWord = 16

// words reads ASCII words of s: letters only.
type words struct{ s string }

// next returns the word starting at or after i, and whether only white
// space separates i from it.
func (w words) next(i int) (start, end int, spaced bool) {
	spaced = true
	for i < len(w.s) && !isLetter(w.s[i]) {
		if !space(w.s[i]) && w.s[i] != '\f' && w.s[i] != '\v' {
			spaced = false
		}
		i++
	}
	start = i
	for i < len(w.s) && isLetter(w.s[i]) {
		i++
	}
	return start, i, spaced
}

func isLetter(c byte) bool { return isUpper(c) || isLower(c) }

// is reports whether the word w.s[start:end] is one of set (lower case).
func (w words) is(start, end int, set []string) bool {
	if end-start > maxWord || end == start {
		return false
	}
	for _, x := range set {
		if len(x) == end-start && equalFold(w.s[start:end], x) {
			return true
		}
	}
	return false
}

// phrase is a cursor over the words after a phrase's first word.
type phrase struct {
	w   words
	end int // end of the last word matched
	ok  bool
}

// word matches the next word, spaced from the last, against set.
func (p *phrase) word(set ...string) bool {
	if !p.ok {
		return false
	}
	s, e, spaced := p.w.next(p.end)
	if !spaced || !p.w.is(s, e, set) {
		p.ok = false
		return false
	}
	p.end = e
	return true
}

// maybe matches the next word against set if it is there.
func (p *phrase) maybe(set ...string) {
	if !p.ok {
		return
	}
	s, e, spaced := p.w.next(p.end)
	if spaced && p.w.is(s, e, set) {
		p.end = e
	}
}

// try runs match from a copy of p and reports the end it reached.
func (p phrase) try(match func(*phrase)) (int, bool) {
	match(&p)
	return p.end, p.ok
}

// instructions reports the phrases and tokens above in t: one pass over
// its words, and searches for the tokens only when t holds a '<' or '['.
func instructions(t *Text, rep report) bool {
	s := t.s
	w := words{s: s}
	for i := 0; i < len(s); {
		start, end, _ := w.next(i)
		if start >= len(s) {
			break
		}
		i = end
		if end-start > maxWord {
			continue
		}
		at := phrase{w: w, end: end, ok: true}
		for _, m := range phraseMatchers {
			if !w.is(start, end, m.first) {
				continue
			}
			if e, ok := at.try(m.rest); ok {
				if !rep("instruction", start, e) {
					return false
				}
				i = e
				break
			}
		}
	}
	if strings.IndexByte(s, '<') < 0 && strings.IndexByte(s, '[') < 0 {
		return true
	}
	lower := t.Lower()
	for _, tok := range templateTokens {
		for i := 0; i < len(lower); {
			k := strings.Index(lower[i:], tok)
			if k < 0 {
				break
			}
			if !rep("instruction", i+k, i+k+len(tok)) {
				return false
			}
			i += k + len(tok)
		}
	}
	for i := 0; i < len(lower); {
		k := strings.Index(lower[i:], "<|")
		if k < 0 {
			break
		}
		start := i + k
		i = start + 2
		j := start + 2
		for j < len(lower) && lower[j] == ' ' {
			j++
		}
		e := j
		for e < len(lower) && (isLower(lower[e]) || lower[e] == '_') {
			e++
		}
		if !w.is(j, e, pipeTokens) {
			continue
		}
		for e < len(lower) && lower[e] == ' ' {
			e++
		}
		if e+2 <= len(lower) && lower[e:e+2] == "|>" {
			if !rep("instruction", start, e+2) {
				return false
			}
			i = e + 2
		}
	}
	return true
}

// phraseMatchers start at a word of first and match the rest of a phrase.
var phraseMatchers = []struct {
	first []string
	rest  func(*phrase)
}{
	{verbsOverride, func(p *phrase) {
		for range 3 {
			p.maybe(fillers...)
		}
		p.word(qualifiers...)
		p.word(targets...)
	}},
	{verbsForget, func(p *phrase) {
		p.word("all", "everything")
		if e, ok := p.try(func(q *phrase) { q.word("you"); q.word("were"); q.word("told") }); ok {
			p.end = e
			return
		}
		if e, ok := p.try(func(q *phrase) { q.word("you"); q.word("have"); q.word("been"); q.word("told") }); ok {
			p.end = e
			return
		}
		p.word("above", "before")
	}},
	{[]string{"you"}, func(p *phrase) {
		p.word("are")
		p.word("now")
		p.maybe("in")
		if e, ok := p.try(func(q *phrase) { q.word(roles...) }); ok {
			p.end = e
			return
		}
		if e, ok := p.try(func(q *phrase) { q.word("developer"); q.word("mode") }); ok {
			p.end = e
			return
		}
		p.word("a", "an")
		p.word("unfiltered")
	}},
	{newish, func(p *phrase) {
		p.maybe("system")
		p.word(instruction...)
		if !p.ok {
			return
		}
		j := p.end
		for j < len(p.w.s) && (p.w.s[j] == ' ' || p.w.s[j] == '\t') {
			j++
		}
		if j >= len(p.w.s) || p.w.s[j] != ':' {
			p.ok = false
			return
		}
		p.end = j + 1
	}},
	{[]string{"do"}, func(p *phrase) {
		p.word("not")
		if e, ok := p.try(func(q *phrase) { q.word(tellVerbs...); q.word("the"); q.word("user") }); ok {
			p.end = e
			return
		}
		p.word(mentionVerb...)
		p.maybe(thisIt...)
		p.word("to")
		p.word("the")
		p.word("user")
	}},
	{leakVerbs, func(p *phrase) {
		p.word(yourThe...)
		p.word(hiddenKinds...)
		p.word(promptish...)
	}},
}
