package upstream

import (
	"context"
	"encoding/json"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Request sends one MCP request other than tools/call (resources/list,
// resources/read, prompts/get, …) to the named upstream with its own
// credential and returns the response as the upstream sent it (a result
// or an error message). It is bounded by the upstream's timeout and
// refused while its circuit breaker is open; it is never retried. Errors
// are *pipeline.Refusal values safe for callers, except the caller's own
// cancellation.
func (p *Pool) Request(ctx context.Context, r Resolver, upstream, method string, params json.RawMessage) (*mcpwire.Message, error) {
	s, err := resolve(r, upstream)
	if err != nil {
		return nil, refusal(upstream, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	e, err := p.acquire(s)
	if err != nil {
		return nil, refusal(upstream, err)
	}
	defer p.release(e)
	done, ref := e.guard.allow()
	if ref != nil {
		return nil, ref
	}
	m, err := e.client.Call(callCtx, method, params, nil)
	done(breakerOutcome(ctx, err))
	if err != nil {
		return nil, p.fail(ctx, s, method, "request", err)
	}
	return m, nil
}
