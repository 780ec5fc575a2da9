package mcpclient

import (
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/excerpt"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// ProtocolError is a server that answered but broke the protocol: a
// malformed message, an unexpected content type, the wrong response, a
// JSON-RPC error where a result was due, a handshake it cannot hold to.
// It is distinct from a server that could not be reached (a transport
// error) or that failed in HTTP's own terms (HTTPError): the server is
// up, and what it says is wrong.
type ProtocolError struct {
	// What says what was wrong, in this package's words.
	What string
	// Excerpt quotes the server: a short, sanitised excerpt (package
	// excerpt, the client's hidden values masked), "" when there is
	// nothing to quote. Never the answer itself.
	Excerpt string
	// Code is the JSON-RPC error code when the server answered with an
	// error where a result was due, else 0.
	Code int
}

func (e *ProtocolError) Error() string {
	if e.Excerpt == "" {
		return "the server broke the MCP protocol: " + e.What
	}
	return fmt.Sprintf("the server broke the MCP protocol: %s: %q", e.What, e.Excerpt)
}

// protocolError builds a ProtocolError quoting quoted (sanitised).
func (c *Client) protocolError(quoted []byte, format string, args ...any) *ProtocolError {
	pe := &ProtocolError{What: fmt.Sprintf(format, args...)}
	if len(quoted) > 0 {
		pe.Excerpt = c.snippet(quoted)
	}
	return pe
}

// Malformed is the ProtocolError of an answer the caller found wrong
// (a result of the wrong shape, say): what says what, quoted is what the
// server sent (excerpted and sanitised like every quote).
func (c *Client) Malformed(quoted []byte, what string) error {
	return c.protocolError(quoted, "%s", what)
}

// Refused is the error of a JSON-RPC error answer m to method, where a
// result was due: a ProtocolError with the error's code and an excerpt of
// its message (the server's text, never quoted whole). A message that is
// not a well-formed error is a ProtocolError as well.
func (c *Client) Refused(method string, m *mcpwire.Message) error {
	e, err := m.ErrorObject()
	if err != nil {
		return c.protocolError(m.Raw, "it answered %s with a malformed error", method)
	}
	return &ProtocolError{
		What:    fmt.Sprintf("it answered %s with JSON-RPC error %d", method, e.Code),
		Excerpt: excerpt.Text(e.Message, excerpt.Max, c.cfg.Hide...),
		Code:    e.Code,
	}
}
