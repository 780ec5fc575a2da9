// Package hop marks what a data plane forwards, so that a request cannot
// loop through the same data plane (an upstream registered by mistake, or
// by an attacker, as the gateway itself or as another gateway that points
// back). Every request a data plane sends upstream carries the header
// Portcullis-Hop: the chain of data planes the call has already passed
// through, comma-separated, then its own id. A data plane refuses a
// request whose chain already names it, or which has passed through more
// than MaxHops data planes.
package hop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Header carries the chain.
const Header = "Portcullis-Hop"

// MaxHops bounds the data planes one call may pass through.
const MaxHops = 8

// maxIDBytes bounds one id in the chain.
const maxIDBytes = 128

// ErrLoop reports a request that already passed through this data plane.
var ErrLoop = errors.New("the request has already passed through this data plane: an upstream points back at the gateway (forwarding loop)")

// Parse reads the chain from the request headers: the values of every
// Header line, in order. An id longer than 128 bytes or a chain of more
// than MaxHops ids is an error.
func Parse(h http.Header) ([]string, error) {
	var chain []string
	for _, v := range h.Values(Header) {
		for id := range strings.SplitSeq(v, ",") {
			id = strings.TrimSpace(id)
			if id == "" {
				continue
			}
			if len(id) > maxIDBytes {
				return nil, fmt.Errorf("a %s entry is longer than %d bytes", Header, maxIDBytes)
			}
			chain = append(chain, id)
			if len(chain) > MaxHops {
				return nil, fmt.Errorf("the request has passed through more than %d gateways", MaxHops)
			}
		}
	}
	return chain, nil
}

// Check refuses a chain that names self (ErrLoop) or is too long to
// extend.
func Check(chain []string, self string) error {
	for _, id := range chain {
		if id == self {
			return ErrLoop
		}
	}
	if len(chain) >= MaxHops {
		return fmt.Errorf("the request has passed through %d gateways, the most one call may", len(chain))
	}
	return nil
}

type chainKey struct{}

// WithChain returns ctx carrying the chain of the call being forwarded.
func WithChain(ctx context.Context, chain []string) context.Context {
	if len(chain) == 0 {
		return ctx
	}
	return context.WithValue(ctx, chainKey{}, chain)
}

// Value is the header value a data plane named self sends upstream for a
// request made under ctx: the chain the call came with, then self.
func Value(ctx context.Context, self string) string {
	chain, _ := ctx.Value(chainKey{}).([]string)
	if len(chain) == 0 {
		return self
	}
	return strings.Join(chain, ", ") + ", " + self
}
