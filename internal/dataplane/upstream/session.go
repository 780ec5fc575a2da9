package upstream

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// entry is the pool's slot for one upstream under one set of settings. It
// holds at most one live client session. The pool's mutex guards refs and
// retired; e.mu guards cs and closed; sem serializes session creation.
type entry struct {
	settings
	http *http.Client

	refs    int  // calls using the entry (pool mutex)
	retired bool // replaced or pruned; closed by its last user (pool mutex)

	sem    chan struct{} // one slot: the right to create the session
	mu     sync.Mutex
	cs     *mcp.ClientSession
	closed bool
}

func newEntry(s settings, hc *http.Client) *entry {
	return &entry{settings: s, http: hc, sem: make(chan struct{}, 1)}
}

// session returns the live session, creating it when there is none. Only
// one caller creates it; the others wait for it or for their ctx.
func (e *entry) session(ctx context.Context, client *mcp.Client) (*mcp.ClientSession, error) {
	if cs, err := e.current(); cs != nil || err != nil {
		return cs, err
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for session: %w", ctx.Err())
	}
	defer func() { <-e.sem }()
	if cs, err := e.current(); cs != nil || err != nil {
		return cs, err
	}

	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   e.url,
		HTTPClient: e.http,
		// No server-initiated stream and no SSE resumption in the minimal
		// path: a broken stream fails its call at once.
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: protocolVersion})
	if err != nil {
		return nil, fmt.Errorf("initialize session: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		_ = cs.Close()
		return nil, errPoolClosed
	}
	e.cs = cs
	return cs, nil
}

func (e *entry) current() (*mcp.ClientSession, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errPoolClosed
	}
	return e.cs, nil
}

// forget drops cs if it is still the live session and reports whether it
// was; the caller closes it.
func (e *entry) forget(cs *mcp.ClientSession) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cs != cs {
		return false
	}
	e.cs = nil
	return true
}

// close ends the entry's session; later session calls fail.
func (e *entry) close() error {
	e.mu.Lock()
	cs := e.cs
	e.cs, e.closed = nil, true
	e.mu.Unlock()
	if cs == nil {
		return nil
	}
	return cs.Close()
}
