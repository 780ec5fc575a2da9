package config

import (
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// MCPUpstreams implements pipeline.ContentAuthorizer.
func (c *Compiled) MCPUpstreams() []pipeline.ContentUpstream {
	var out []pipeline.ContentUpstream
	for name, u := range c.upstreams {
		switch u.GetProtocol() {
		case configv1.Protocol_PROTOCOL_MCP, configv1.Protocol_PROTOCOL_UNSPECIFIED:
			out = append(out, pipeline.ContentUpstream{Name: name, Prefix: authz.EffectivePrefix(u)})
		}
	}
	slices.SortFunc(out, func(a, b pipeline.ContentUpstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}
