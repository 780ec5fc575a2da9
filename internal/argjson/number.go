package argjson

import (
	"errors"
	"strconv"
	"strings"
)

// MaxExponent bounds the decimal exponent of a JSON number the gateway
// accepts in arguments. Cedar holds nothing near it, and a JSON Schema
// validator does big-number arithmetic whose cost grows with it.
const MaxExponent = 1000

// ErrRange is a number beyond ±10^MaxExponent or below 10^-MaxExponent.
var ErrRange = errors.New("number too large or too small")

// Number is the exact value of a JSON number literal:
// sign × digits × 10^exp, digits without leading or trailing zeros, empty
// for zero.
type Number struct {
	neg    bool
	digits string
	exp    int
}

// ParseNumber reads a JSON number literal exactly; a magnitude beyond
// MaxExponent is ErrRange.
func ParseNumber(lit string) (Number, error) {
	var n Number
	s := lit
	if strings.HasPrefix(s, "-") {
		n.neg, s = true, s[1:]
	}
	mant, expText, hasExp := cutAny(s, "eE")
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart == "" || !allDigits(intPart) || !allDigits(frac) {
		return Number{}, errors.New("malformed number")
	}
	exp := 0
	if hasExp {
		e, err := parseExponent(expText)
		if err != nil {
			if strings.Trim(intPart+frac, "0") == "" {
				return Number{}, nil // zero with an absurd exponent is still zero
			}
			return Number{}, err
		}
		exp = e
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= len(frac)
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	if trimmed == "" {
		return Number{}, nil
	}
	if exp > MaxExponent || exp < -MaxExponent {
		return Number{}, ErrRange
	}
	n.digits, n.exp = trimmed, exp
	return n, nil
}

// parseExponent reads an exponent, refusing magnitudes beyond MaxExponent
// (before converting, so a thousand-digit exponent cannot overflow).
func parseExponent(s string) (int, error) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	if s == "" || !allDigits(s) {
		return 0, errors.New("malformed number")
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 6 {
		return 0, ErrRange
	}
	e := 0
	if s != "" {
		e, _ = strconv.Atoi(s) // at most six digits: cannot fail
	}
	if neg {
		e = -e
	}
	return e, nil
}

// Scaled returns n × 10^shift as an int64. exact is false when that value
// has a fractional part; fits is false when it is outside int64.
func (n Number) Scaled(shift int) (v int64, exact, fits bool) {
	if n.digits == "" {
		return 0, true, true
	}
	e := n.exp + shift
	if e < 0 {
		// digits has no trailing zeros, so a negative exponent leaves a
		// fraction.
		return 0, false, true
	}
	if len(n.digits)+e > 19 {
		return 0, true, false
	}
	text := n.digits + strings.Repeat("0", e)
	if n.neg {
		text = "-" + text
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, true, false
	}
	return v, true, true
}

func cutAny(s, chars string) (before, after string, found bool) {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
