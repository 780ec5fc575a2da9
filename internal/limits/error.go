package limits

import (
	"errors"
	"fmt"
	"strconv"
)

// Error says which field is over which limit. Its message names the field,
// the limit and, for text, the line and column; it is safe to show to
// clients (it never quotes the field's content).
type Error struct {
	// Field is the field's path, e.g. "versions[0].input_schema".
	Field string
	// Line and Column locate the problem in a text field (1-based; Column
	// counts characters); both are 0 when there is no position.
	Line, Column int
	// Msg says what is wrong and what to do.
	Msg string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return e.Field + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column) + ": " + e.Msg
	}
	return e.Field + ": " + e.Msg
}

// In renders the error for a text field read from filename:
// "<filename>:<line>:<col>: <msg>", as Cedar diagnostics are written; an
// error without a position renders as Error does.
func (e *Error) In(filename string) string {
	if e.Line > 0 {
		return filename + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column) + ": " + e.Msg
	}
	return e.Error()
}

// ErrExceeded is matched by every *Error via errors.Is.
var ErrExceeded = errors.New("over a limit")

// Is makes errors.Is(err, ErrExceeded) true.
func (e *Error) Is(target error) bool { return target == ErrExceeded }

func exceeded(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// in prefixes the field of err (an *Error, or nil) with parent.
func in(parent string, err error) error {
	var e *Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	c := *e
	c.Field = parent + "." + e.Field
	return &c
}

// position returns the 1-based line and column (in characters) of byte
// offset off in src.
func position(src []byte, off int) (line, col int) {
	line, col = 1, 1
	for i := 0; i < off && i < len(src); i++ {
		switch {
		case src[i] == '\n':
			line++
			col = 1
		case src[i]&0xC0 != 0x80: // not a UTF-8 continuation byte
			col++
		}
	}
	return line, col
}
