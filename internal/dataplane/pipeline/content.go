package pipeline

import "context"

// ContentUpstream is an MCP upstream whose resources and prompts a caller
// may use, and the prefix that namespaces them ("<prefix>__<name or uri>";
// no prefix for an upstream registered without one).
type ContentUpstream struct {
	Name, Prefix string
}

// ContentAuthorizer is implemented by a Config that serves MCP resources
// and prompts. Access to an upstream's resources and prompts follows
// access to its tools: an agent may read them when the policies could
// permit it (on behalf of the call's user) some call of at least one of
// that upstream's approved tools. So nothing is readable by default, and
// the policies that grant an upstream's tools grant its content. Adapters
// and stages find it with a type assertion.
type ContentAuthorizer interface {
	// ContentUpstreams lists, in name order, the MCP upstreams whose
	// content c.Agent may use.
	ContentUpstreams(ctx context.Context, c *Call) []ContentUpstream
	// MCPUpstreams lists every MCP upstream, in name order, to route a
	// namespaced name to its upstream before access is decided.
	MCPUpstreams() []ContentUpstream
}
