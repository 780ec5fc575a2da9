package identity

// Error is a refused token. Its message is safe to show to the caller; the
// cause, when there is one, is internal detail for logs.
type Error struct {
	msg   string
	cause error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the internal cause, if any.
func (e *Error) Unwrap() error { return e.cause }

func refused(msg string, cause error) *Error { return &Error{msg: msg, cause: cause} }
