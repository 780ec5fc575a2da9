// Package llmwire is the wire format of the LLM APIs the gateway brokers:
// OpenAI's Chat Completions and Responses, and Anthropic's Messages. It
// reads only what the gateway needs from a request (the model, the output
// limit, streaming, the tools requested, the text to estimate tokens
// from) and from an answer or an event stream (the provider's usage
// counts, the end of the stream, the text produced), and makes the few
// edits the gateway makes to a request (the model's own id, asking an
// OpenAI stream for usage, an output limit where there is none), keeping
// every other byte. Nothing is round-tripped through typed structs: what
// the provider and the caller send passes as they sent it.
//
// Everything here reads bytes from outside (agents and providers): every
// function is bounded by its input, never panics, and is fuzzed.
package llmwire
