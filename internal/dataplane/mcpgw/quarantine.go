package mcpgw

import (
	"context"
	"log/slog"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// unquarantined drops the quarantined tools from tools, after re-checking
// their upstreams if their last check is not recent (q bounds the wait), so
// that a tool whose upstream changed it is hidden within one tools/list.
// A nil q keeps every tool.
func (h *Handler) unquarantined(ctx context.Context, q pipeline.Quarantine, tools []pipeline.Tool) []pipeline.Tool {
	if q == nil || len(tools) == 0 {
		return tools
	}
	var upstreams []string
	seen := map[string]bool{}
	for _, t := range tools {
		if !seen[t.Upstream] {
			seen[t.Upstream] = true
			upstreams = append(upstreams, t.Upstream)
		}
	}
	q.Refresh(ctx, upstreams)
	out := tools[:0:0]
	for _, t := range tools {
		if msg, bad := q.Quarantined(ctx, t); bad {
			h.logger.DebugContext(ctx, "quarantined tool not listed", slog.String("action", t.Action), slog.String("why", msg))
			continue
		}
		out = append(out, t)
	}
	return out
}
