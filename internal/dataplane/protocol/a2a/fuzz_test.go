package a2a_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	a2agw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/a2a"
)

// FuzzEndpoint: whatever a caller posts, the endpoint answers without
// panicking, and a call reaches the pipeline only as a call on the agent.
func FuzzEndpoint(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{"message":{"parts":[],"metadata":{"skill":"x"}}}}`), "1.0")
	f.Add([]byte(`{"jsonrpc":"2.0","id":"a","method":"tasks/get","params":{"id":"g1t.x.y"}}`), "")
	f.Add([]byte(`{"jsonrpc":"2.0","id":2,"method":"ListTasks","params":{"contextId":7}}`), "1.0")
	snap := authztest.AddRemoteAgents(configtest.Snapshot())
	snap.TaskIdKey = bytes.Repeat([]byte{1}, 32)
	cfg := configtest.Compile(f, snap)
	b := &backend{cfg: cfg, run: func(_ context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		if c.Target.Kind != pipeline.KindAgent && c.Target.Kind != pipeline.KindSkill {
			panic("a call of kind " + string(c.Target.Kind))
		}
		return nil, pipeline.Refuse(pipeline.ReasonDenied, "no")
	}}
	h := a2agw.NewHandler(b, discard(), "", nil)
	f.Fuzz(func(t *testing.T, body []byte, version string) {
		req := httptest.NewRequest(http.MethodPost, "/a2a/"+authztest.Travel, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+configtest.PayerKey)
		req.Header.Set("A2A-Version", version)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		_, _ = io.ReadAll(rec.Result().Body)
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
