package cedarschema

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// cedar-go's policy parser reports positions only in its error text, in two
// shapes (the parser always names the input "<input>"):
//
//	parser error: parse error at <input>:3:25 ";": invalid primary
//	parser error: <input>:3:20: literal not terminated
//
// The first comes from the parser and names the token it stopped at, which
// for many errors is the token after the offending one; the second comes
// from the scanner and points at the offending character.
var (
	parserErrRE  = regexp.MustCompile(`(?s)^parse error at <input>:(\d+):(\d+) ("(?:[^"\\]|\\.)*"): (.*)$`)
	scannerErrRE = regexp.MustCompile(`(?s)^<input>:(\d+):(\d+): (.*)$`)
	exactRE      = regexp.MustCompile(`(?s)^exact got (.*) want (.*)$`)
)

// parseDiagnostic turns a cedar-go parse error into a diagnostic carrying
// the line and column cedar-go reported. Text it does not recognise is kept
// whole, without a line.
func parseDiagnostic(filename string, err error) Diagnostic {
	text := strings.TrimPrefix(err.Error(), "parser error: ")
	d := Diagnostic{Position: Position{Filename: filename}, Message: "syntax error: " + text}
	if m := parserErrRE.FindStringSubmatch(text); m != nil {
		d.Position.Line, d.Position.Column = atoi(m[1]), atoi(m[2])
		d.Message = parserMessage(m[3], m[4])
	} else if m := scannerErrRE.FindStringSubmatch(text); m != nil {
		d.Position.Line, d.Position.Column = atoi(m[1]), atoi(m[2])
		d.Message = "syntax error: " + m[3]
	}
	return d
}

// parserMessage words a parser error; token is the quoted token the parser
// stopped at, `""` at the end of the input.
func parserMessage(token, msg string) string {
	if m := exactRE.FindStringSubmatch(msg); m != nil {
		got := strconv.Quote(m[1])
		if m[1] == "" {
			got = "end of input"
		}
		return fmt.Sprintf("syntax error: expected %q, got %s", m[2], got)
	}
	if token == `""` {
		return "syntax error at end of input: " + msg
	}
	return "syntax error near " + token + ": " + msg
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
