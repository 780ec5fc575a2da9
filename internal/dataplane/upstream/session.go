package upstream

import (
	"context"
	"time"

	"github.com/portcullis-gw/portcullis/internal/mcpclient"
)

// closeTimeout bounds telling an upstream that its session ended.
const closeTimeout = 5 * time.Second

// entry is the pool's slot for one upstream under one set of settings: one
// MCP client, which holds at most one legacy session (or none in the
// modern era) shared by every call, and the upstream's resilience state.
// The pool's mutex guards refs and retired.
type entry struct {
	settings
	client *mcpclient.Client
	guard  *guard // breaker, retry budget, concurrency slots

	refs    int  // calls using the entry (pool mutex)
	retired bool // replaced or pruned; closed by its last user (pool mutex)
}

// close ends the entry's session, best effort.
func (e *entry) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return e.client.Close(ctx)
}
