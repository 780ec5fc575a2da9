package mcpclient

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/excerpt"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Bounds on a tools/list walk.
const (
	MaxToolPages = 100
	MaxTools     = 10_000
)

// ListTools walks tools/list through every page and returns each tool
// definition exactly as the server sent it.
func (c *Client) ListTools(ctx context.Context) ([]json.RawMessage, error) {
	var out []json.RawMessage
	cursor := ""
	for page := 0; ; page++ {
		if page == MaxToolPages {
			return nil, fmt.Errorf("tools/list: more than %d pages", MaxToolPages)
		}
		params := json.RawMessage(`{}`)
		if cursor != "" {
			b, err := json.Marshal(map[string]string{"cursor": cursor})
			if err != nil {
				return nil, err
			}
			params = b
		}
		m, err := c.Call(ctx, "tools/list", params, nil)
		if err != nil {
			return nil, fmt.Errorf("tools/list: %w", err)
		}
		if m.Kind() == mcpwire.KindError {
			return nil, c.Refused("tools/list", m)
		}
		var res struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := json.Unmarshal(m.Result, &res); err != nil {
			return nil, fmt.Errorf("tools/list: %w", c.protocolError(m.Result, "its result is malformed (%v)", err))
		}
		out = append(out, res.Tools...)
		if len(out) > MaxTools {
			return nil, fmt.Errorf("tools/list: more than %d tools", MaxTools)
		}
		if res.NextCursor == "" {
			return out, nil
		}
		if res.NextCursor == cursor {
			return nil, fmt.Errorf("tools/list: the server repeated cursor %q", excerpt.Text(cursor, 40))
		}
		cursor = res.NextCursor
	}
}
