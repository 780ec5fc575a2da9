package llm

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/llmwire"
)

// TestRateLimitedRefusal checks the HTTP shape of a rate_limited refusal:
// 429, Retry-After in whole seconds (rounded up), and the IETF
// RateLimit-Policy and RateLimit fields naming the limit.
func TestRateLimitedRefusal(t *testing.T) {
	r := pipeline.Refuse(pipeline.ReasonRateLimited, "rate limit %q: no capacity", "per-agent")
	r.RetryAfter = 1500 * time.Millisecond
	r.Quota = &pipeline.Quota{Policy: "per-agent", Limit: 100, Window: time.Minute}
	for _, f := range []llmwire.Family{llmwire.OpenAI, llmwire.Anthropic} {
		w := httptest.NewRecorder()
		writeRefusal(w, f, r)
		h := w.Result().Header
		if w.Code != http.StatusTooManyRequests || h.Get("Retry-After") != "2" || h.Get(ReasonHeader) != "rate_limited" ||
			h.Get("RateLimit-Policy") != `"per-agent";q=100;w=60` || h.Get("RateLimit") != `"per-agent";r=0;t=2` {
			t.Fatalf("family %d: status %d, headers %v", f, w.Code, h)
		}
	}
}
