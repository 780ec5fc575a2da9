package upstream

import (
	"context"
	"encoding/json"
	"fmt"
)

// ListTools walks the named upstream's tools/list and returns each tool
// definition exactly as the upstream sent it, for drift detection. It uses
// the upstream's pooled client (its own credential attached; a legacy
// session shared with calls) and is bounded by the upstream's timeout
// (default 30s) as well as ctx. Errors say which upstream failed and name
// no secret.
func (p *Pool) ListTools(ctx context.Context, r Resolver, upstream string) ([]json.RawMessage, error) {
	s, err := resolve(r, upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", upstream, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	e, err := p.acquire(s)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", upstream, err)
	}
	defer p.release(e)
	defs, err := e.client.ListTools(ctx)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", upstream, err)
	}
	return defs, nil
}
