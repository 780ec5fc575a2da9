package authz

import (
	"errors"
	"fmt"
)

// Errors access questions ([Engine.Explain], [Engine.WhoCan]) return, for
// callers to branch on with errors.Is. A data-plane decision never returns
// them: it denies instead.
var (
	// ErrUnknownAgent: no agent of that name, enabled or not, exists in
	// the configuration version.
	ErrUnknownAgent = errors.New("unknown agent")
	// ErrUnknownResource: the resource (a tool) does not exist in the
	// configuration version, or its type is not one the gateway serves.
	ErrUnknownResource = errors.New("unknown resource")
	// ErrInvalidRequest: the request is malformed (a user without source
	// or name, an action that does not apply to the resource).
	ErrInvalidRequest = errors.New("invalid request")
)

// kindError is an error of one of the kinds above (errors.Is) whose
// message is its own, without the kind's text.
type kindError struct {
	kind error
	msg  string
}

func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }
