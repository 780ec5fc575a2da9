package server

import (
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	a2agw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/a2a"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol/llm"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
)

// protocols are the protocols this data plane brokers, each built from
// the same dependencies. A new protocol is one more entry here (see
// package protocol for what its package provides).
func protocols(deps protocol.Deps) []protocol.Protocol {
	return []protocol.Protocol{
		mcpgw.New(deps),
		a2agw.New(deps),
		llm.New(deps),
	}
}
