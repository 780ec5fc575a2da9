package protocol_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// fake is a protocol whose forwarder and lister answer with its name.
func fake(name string, lists bool, serves ...configv1.Protocol) protocol.Protocol {
	p := protocol.Protocol{
		Name:      name,
		Upstreams: serves,
		Forward: func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
			return &pipeline.Result{Body: json.RawMessage(`"` + name + `"`)}, nil
		},
	}
	if lists {
		p.Tools = lister(name)
	}
	return p
}

type lister string

func (l lister) ListTools(context.Context, upstream.Resolver, string) ([]json.RawMessage, error) {
	return []json.RawMessage{json.RawMessage(`"` + string(l) + `"`)}, nil
}

var ps = []protocol.Protocol{
	fake("mcp", true, configv1.Protocol_PROTOCOL_MCP, configv1.Protocol_PROTOCOL_UNSPECIFIED),
	fake("a2a", false, configv1.Protocol_PROTOCOL_A2A),
}

// TestForwarder: a call goes to the forwarder of the protocol it came in
// by; a call of no registered protocol is refused.
func TestForwarder(t *testing.T) {
	forward := protocol.Forwarder(ps)
	for _, name := range []string{"mcp", "a2a"} {
		res, err := forward(t.Context(), &pipeline.Call{Protocol: name})
		if err != nil || string(res.Body) != `"`+name+`"` {
			t.Errorf("%s call: %v %v, want its own forwarder", name, res, err)
		}
	}
	_, err := forward(t.Context(), &pipeline.Call{Protocol: "llm"})
	var ref *pipeline.Refusal
	if !errors.As(err, &ref) || ref.Reason != pipeline.ReasonInternal {
		t.Fatalf("call of an unregistered protocol: %v, want an internal refusal", err)
	}
}

// TestLister: an upstream's tools are listed by the protocol serving its
// configured protocol; an unknown upstream, or one whose protocol lists
// no tools, is an error.
func TestLister(t *testing.T) {
	r := upstreamtest.NewResolver()
	r.SetUpstream(upstreamtest.MCP("tools", "http://127.0.0.1:1/mcp", ""))
	bare := upstreamtest.MCP("bare", "http://127.0.0.1:1/mcp", "")
	bare.Protocol = configv1.Protocol_PROTOCOL_UNSPECIFIED
	r.SetUpstream(bare)
	agent := upstreamtest.MCP("agent", "http://127.0.0.1:1/a2a", "")
	agent.Protocol = configv1.Protocol_PROTOCOL_A2A
	r.SetUpstream(agent)

	l := protocol.Lister(ps)
	for _, name := range []string{"tools", "bare"} {
		defs, err := l.ListTools(t.Context(), r, name)
		if err != nil || len(defs) != 1 || string(defs[0]) != `"mcp"` {
			t.Errorf("%s: %s %v, want MCP's listing", name, defs, err)
		}
	}
	for name, want := range map[string]string{"agent": "no protocol of this data plane lists", "gone": "not in the data plane's configuration"} {
		if _, err := l.ListTools(t.Context(), r, name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, want)
		}
	}
}
