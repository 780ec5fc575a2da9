// Package llm brokers model calls: OpenAI's Chat Completions and
// Responses and Anthropic's Messages, towards agents and towards
// providers, as single answers and as event streams.
//
// Agents point their SDKs at the data plane: OpenAI clients at
// /llm/openai/v1 (POST chat/completions and responses, GET models),
// Anthropic clients at /llm/anthropic (POST v1/messages, GET v1/models),
// with their Portcullis API key as the SDK's API key. Each request becomes
// one pipeline.Call (operation call, target kind model) named by the model
// the request names: "<prefix>/<model id>" of an LLM upstream, or an
// alias. The pipeline authenticates, gates, limits (a budget reserves the
// call's worst case: its input estimate plus its output limit, at the
// model's price), authorizes (Cedar's llm:complete on the Model) and
// audits it like any call; the forwarder sends it to the provider with the
// upstream's own key and the provider's model id, and relays the answer as
// the provider sent it.
//
// Usage is the provider's own: for an OpenAI Chat Completions stream the
// gateway asks for it (stream_options.include_usage) and drops the extra
// usage chunk when the caller did not ask; Anthropic's cumulative
// message_delta counts replace one another. When a stream breaks or the
// caller goes away before the provider's count arrives, the gateway counts
// the tokens already streamed with an offline tokenizer and the record
// says the usage is an estimate. Audit records keep the prompt and the
// completion only by size and SHA-256.
//
// Runtime inspection sees a model call through Call.Content (inspect.go):
// the prompt as the request, and the texts of a complete answer
// (Result.Body) or of each streamed event (Call.Relay.Notify) as the
// response, which it may redact, withhold or end.
package llm

import (
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Name is the protocol's name in pipeline.Call.Protocol and the
// configuration ("llm").
const Name = "llm"

// Defaults for LLM upstreams' unset settings: a completion may stream for
// minutes and carry images, and holds a concurrency slot while it does.
const (
	DefaultTimeout        = 10 * time.Minute
	DefaultMaxRequest     = 16 << 20
	DefaultMaxResponse    = 32 << 20
	DefaultMaxConcurrency = 256
)

// New returns the LLM protocol as the data plane registers it: the OpenAI
// and Anthropic endpoints, and the forwarder over a cache of upstream
// connections.
func New(d protocol.Deps) protocol.Protocol {
	f := NewForwarder(d.Logger, upstream.WithObserver(d.Observer), upstream.WithHopID(d.HopID), upstream.WithHTTP1(d.UpstreamHTTP1))
	var anon AnonymousRecorder
	if d.Anonymous != nil {
		anon = anonymous{d.Anonymous}
	}
	h := NewHandler(d.Backend, d.Logger, d.HopID, anon)
	return protocol.Protocol{
		Name:      Name,
		Upstreams: []configv1.Protocol{configv1.Protocol_PROTOCOL_LLM},
		Endpoints: []protocol.Endpoint{
			{Pattern: OpenAIBase + "/", Handler: h},
			{Pattern: AnthropicBase + "/", Handler: h},
		},
		Forward:    f.Forward,
		Configured: f.Prune,
		Close:      f.Close,
	}
}

// AnonymousRecorder counts requests the endpoints refuse before any agent
// could be identified. It must be safe for concurrent use.
type AnonymousRecorder interface {
	Refused(src netip.Addr, reason string)
}

// anonymous labels the endpoints' anonymous refusals with the protocol.
type anonymous struct{ rec protocol.AnonymousRecorder }

func (a anonymous) Refused(src netip.Addr, reason string) { a.rec.Refused(Name, src, reason) }
