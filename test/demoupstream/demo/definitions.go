package demo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Definition is one tool as the demo server lists it over MCP.
type Definition struct {
	Name     string
	ReadOnly bool
	// JSON is the tool object exactly as tools/list returns it.
	JSON json.RawMessage
}

// Definitions lists the demo's tools through a real MCP client session
// (in memory), i.e. what an operator would see when discovering them.
func (h *Handler) Definitions(ctx context.Context) ([]Definition, error) {
	ct, st := mcp.NewInMemoryTransports()
	ss, err := h.server.Connect(ctx, st, nil)
	if err != nil {
		return nil, fmt.Errorf("connect demo server: %w", err)
	}
	defer ss.Close()
	client := mcp.NewClient(&mcp.Implementation{Name: "demo-definitions", Version: "1.0.0"}, nil)
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("connect client: %w", err)
	}
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list tools: %w", err)
	}
	out := make([]Definition, 0, len(res.Tools))
	for _, t := range res.Tools {
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		out = append(out, Definition{Name: t.Name, ReadOnly: t.Annotations != nil && t.Annotations.ReadOnlyHint, JSON: b})
	}
	return out, nil
}
