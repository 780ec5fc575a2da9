package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// TestNewConfigurationNotifiesSessionStreams: a session's GET stream gets
// notifications/tools/list_changed when the data plane applies a new
// snapshot, and ends when the data plane closes.
func TestNewConfigurationNotifiesSessionStreams(t *testing.T) {
	s := configtest.Snapshot()
	s.VersionTime = timestamppb.Now()
	dp, err := Start(context.Background(), Config{
		DataDir: t.TempDir(), ControlPlanes: []string{"http://127.0.0.1:1"}, Dev: true,
		Credential: joincred.Credential{Name: "dp1", Token: "pct_test"},
		Listen:     "127.0.0.1:0", AuditAsync: true, DegradedAfter: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = dp.Close()
		}
	})
	if _, err := dp.Apply(context.Background(), configtest.Marshal(t, s)); err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + dp.Addr() + "/mcp"
	do := func(method, body string, h map[string]string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), method, endpoint, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+configtest.PayerKey)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	opened := do(http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`, nil)
	_ = opened.Body.Close()
	sid := opened.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("initialize: %s, no session", opened.Status)
	}
	stream := do(http.MethodGet, "", map[string]string{"Mcp-Session-Id": sid})
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s", stream.Status)
	}
	events := make(chan string, 4)
	go func() {
		r := mcpwire.NewEventReader(stream.Body, 1<<20)
		for {
			ev, err := r.Next()
			if err != nil {
				close(events)
				return
			}
			events <- string(ev.Data)
		}
	}()
	// The stream is registered once its headers are out; apply newer
	// versions until the notification arrives.
	deadline := time.After(10 * time.Second)
	for v := s.GetVersion() + 1; ; v++ {
		s.Version = v
		if _, err := dp.Apply(context.Background(), configtest.Marshal(t, s)); err != nil {
			t.Fatal(err)
		}
		select {
		case msg := <-events:
			if !strings.Contains(msg, "notifications/tools/list_changed") {
				t.Fatalf("event %q", msg)
			}
			closed = true
			if err := dp.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case _, open := <-events:
				if open {
					t.Error("another event after close")
				}
			case <-time.After(5 * time.Second):
				t.Error("the GET stream did not end when the data plane closed")
			}
			return
		case <-deadline:
			t.Fatal("no list_changed on the session's stream")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
