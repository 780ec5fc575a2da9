package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// httpEnv serves the endpoint over real HTTP (streams need a connection).
type httpEnv struct {
	*env
	srv *httptest.Server
}

func newHTTPEnv(t *testing.T, opts ...mcpgw.Option) *httpEnv {
	t.Helper()
	e := newEnv(t, opts...)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	return &httpEnv{env: e, srv: srv}
}

func (e *httpEnv) send(t *testing.T, method, session, body string, header map[string]string) *http.Response {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	hr, _ := http.NewRequestWithContext(t.Context(), method, e.srv.URL, rd)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json, text/event-stream")
	hr.Header.Set("Authorization", "Bearer "+aliceKey)
	if session != "" {
		hr.Header.Set("Mcp-Session-Id", session)
	}
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func progressNote(i int) []byte {
	b, _ := mcpwire.NewNotification("notifications/progress", json.RawMessage(`{"progressToken":"my-token","progress":`+string(rune('0'+i))+`}`))
	return b
}

// TestStreamResumesAfterADisconnect: the caller's connection breaks after
// the first event; the call goes on, and GET with Last-Event-ID delivers
// the rest and the result.
func TestStreamResumesAfterADisconnect(t *testing.T) {
	e := newHTTPEnv(t)
	sid := e.initialize(t, aliceKey)
	disconnected := make(chan struct{})
	finished := make(chan struct{})
	e.b.terminal = func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		defer close(finished)
		_ = c.Relay.Notify(progressNote(1))
		<-disconnected
		if ctx.Err() != nil {
			t.Error("the call was cancelled by the disconnect")
		}
		_ = c.Relay.Notify(progressNote(2))
		_ = c.Relay.Notify(progressNote(3))
		return okResult(ctx, c)
	}
	resp := e.send(t, http.MethodPost, sid, weatherCall, nil)
	r := mcpwire.NewEventReader(resp.Body, 1<<20)
	first, err := r.Next()
	if err != nil || first.ID == "" {
		t.Fatalf("first event %+v, %v: want one with an id", first, err)
	}
	resp.Body.Close()
	close(disconnected)
	<-finished

	resp = e.send(t, http.MethodGet, sid, "", map[string]string{"Last-Event-ID": first.ID})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: HTTP %d", resp.StatusCode)
	}
	r = mcpwire.NewEventReader(resp.Body, 1<<20)
	var got []string
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		got = append(got, string(ev.Data))
	}
	if len(got) != 3 || !strings.Contains(got[0], `"progress":2`) || !strings.Contains(got[1], `"progress":3`) || !strings.Contains(got[2], "sunny") {
		t.Fatalf("resumed events %q, want progress 2, 3 and the result", got)
	}

	// Another session cannot resume it; a bad id is refused.
	other := e.initialize(t, aliceKey)
	if resp := e.send(t, http.MethodGet, other, "", map[string]string{"Last-Event-ID": first.ID}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("resume from another session: HTTP %d, want 404", resp.StatusCode)
	}
	if resp := e.send(t, http.MethodGet, sid, "", map[string]string{"Last-Event-ID": "garbage"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: HTTP %d, want 400", resp.StatusCode)
	}
}

// TestCancelledNotificationCancelsTheCall: notifications/cancelled for a
// running request in the session cancels its call.
func TestCancelledNotificationCancelsTheCall(t *testing.T) {
	e := newHTTPEnv(t)
	sid := e.initialize(t, aliceKey)
	cancelled := make(chan struct{})
	e.b.terminal = func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		_ = c.Relay.Notify(progressNote(1))
		select {
		case <-ctx.Done():
			close(cancelled)
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return nil, errors.New("not cancelled")
		}
	}
	resp := e.send(t, http.MethodPost, sid, weatherCall, nil)
	if _, err := mcpwire.NewEventReader(resp.Body, 1<<20).Next(); err != nil {
		t.Fatal(err)
	}
	note := e.send(t, http.MethodPost, sid, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}}`, nil)
	if note.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: HTTP %d", note.StatusCode)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the call was not cancelled")
	}
}

// TestEndingTheSessionCancelsItsCalls: a session's DELETE cancels its
// running calls (a resumable call outlives its connection, so without it
// the call would run on for no one), and only that session's.
func TestEndingTheSessionCancelsItsCalls(t *testing.T) {
	e := newHTTPEnv(t)
	sid, other := e.initialize(t, aliceKey), e.initialize(t, aliceKey)
	started := make(chan struct{}, 2)
	ended := make(chan string, 2)
	e.b.terminal = func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		_ = c.Relay.Notify(progressNote(1))
		started <- struct{}{}
		select {
		case <-ctx.Done():
			ended <- "cancelled"
			return nil, ctx.Err()
		case <-time.After(3 * time.Second):
			ended <- "ran on"
			return nil, errors.New("not cancelled")
		}
	}
	for _, s := range []string{sid, other} {
		resp := e.send(t, http.MethodPost, s, weatherCall, nil)
		if _, err := mcpwire.NewEventReader(resp.Body, 1<<20).Next(); err != nil {
			t.Fatal(err)
		}
		<-started
	}
	if resp := e.send(t, http.MethodDelete, sid, "", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: HTTP %d", resp.StatusCode)
	}
	select {
	case got := <-ended:
		if got != "cancelled" {
			t.Fatalf("the ended session's call %s", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the ended session's call was not cancelled")
	}
	if got := <-ended; got != "ran on" {
		t.Fatalf("the other session's call was %s", got)
	}
}

// TestStandaloneStreamGetsListChanged: a session's GET stream receives
// notifications/tools/list_changed when the configuration changes, and
// ends when the signal channel closes.
func TestStandaloneStreamGetsListChanged(t *testing.T) {
	changed := make(chan struct{}, 1)
	e := newHTTPEnv(t, mcpgw.WithToolsChanged(changed))
	sid := e.initialize(t, aliceKey)
	resp := e.send(t, http.MethodGet, sid, "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET: HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := mcpwire.NewEventReader(resp.Body, 1<<20)
	// The stream is registered once its headers are out; signal until
	// the notification arrives.
	got := make(chan string, 1)
	go func() {
		ev, err := r.Next()
		if err == nil {
			got <- string(ev.Data)
		}
		close(got)
	}()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case changed <- struct{}{}:
		default:
		}
		select {
		case msg := <-got:
			if !strings.Contains(msg, "notifications/tools/list_changed") {
				t.Fatalf("event %q", msg)
			}
			close(changed)
			if _, err := r.Next(); err == nil {
				t.Error("the stream did not end when the endpoint shut down")
			}
			return
		case <-deadline:
			t.Fatal("no list_changed")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
