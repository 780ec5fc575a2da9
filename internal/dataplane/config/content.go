package config

import (
	"context"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

var _ pipeline.ContentAuthorizer = (*Compiled)(nil)

// ContentUpstreams implements pipeline.ContentAuthorizer: the MCP
// upstreams with at least one approved tool the policies could permit
// call.Agent to call (see Listable), in name order.
func (c *Compiled) ContentUpstreams(ctx context.Context, call *pipeline.Call) []pipeline.ContentUpstream {
	granted := map[string]bool{}
	for _, t := range c.Listable(ctx, call) {
		granted[t.Upstream] = true
	}
	all := c.MCPUpstreams()
	out := all[:0]
	for _, u := range all {
		if granted[u.Name] {
			out = append(out, u)
		}
	}
	return out
}

// MCPUpstreams implements pipeline.ContentAuthorizer.
func (c *Compiled) MCPUpstreams() []pipeline.ContentUpstream {
	var out []pipeline.ContentUpstream
	for name, u := range c.upstreams {
		switch u.GetProtocol() {
		case configv1.Protocol_PROTOCOL_MCP, configv1.Protocol_PROTOCOL_UNSPECIFIED:
			out = append(out, pipeline.ContentUpstream{Name: name, Prefix: effectivePrefix(u)})
		}
	}
	slices.SortFunc(out, func(a, b pipeline.ContentUpstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}
