package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// events reads an event-stream answer into its JSON-RPC messages.
func events(t *testing.T, rec *httptest.ResponseRecorder) []*mcpwire.Message {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream (body %s)", ct, rec.Body)
	}
	r := mcpwire.NewEventReader(bytes.NewReader(rec.Body.Bytes()), 1<<20)
	var out []*mcpwire.Message
	for {
		ev, err := r.Next()
		if err != nil {
			return out
		}
		m, err := mcpwire.Parse(ev.Data)
		if err != nil {
			t.Fatalf("event %q: %v", ev.Data, err)
		}
		out = append(out, m)
	}
}

const weatherCall = `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"Oslo"},"_meta":{"progressToken":"my-token"}}}`

func TestProgressIsStreamedBeforeTheResult(t *testing.T) {
	e := newEnv(t)
	e.b.terminal = func(_ context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		if c.Relay == nil || c.Relay.Notify == nil || c.Relay.Wire == nil {
			t.Errorf("relay = %+v, want one carrying the caller's progress token", c.Relay)
			return okResult(context.Background(), c)
		}
		for i := 1; i <= 2; i++ {
			msg, _ := mcpwire.NewNotification("notifications/progress", json.RawMessage(`{"progressToken":"my-token","progress":`+string(rune('0'+i))+`}`))
			if err := c.Relay.Notify(msg); err != nil {
				t.Errorf("notify: %v", err)
			}
		}
		return okResult(context.Background(), c)
	}
	rec := e.do(t, req{token: aliceKey, body: weatherCall})
	msgs := events(t, rec)
	if len(msgs) != 3 {
		t.Fatalf("%d events, want 2 progress + the result: %s", len(msgs), rec.Body)
	}
	for _, m := range msgs[:2] {
		if m.Method != "notifications/progress" {
			t.Errorf("event %s, want progress", m.Raw)
		}
	}
	if last := msgs[2]; last.Kind() != mcpwire.KindResult || string(last.ID) != "5" || !strings.Contains(string(last.Result), "sunny") {
		t.Errorf("last event %s, want the result for id 5", last.Raw)
	}
}

func TestNoStreamWithoutProgressOrForJSONOnlyCallers(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, req{token: aliceKey, body: weatherCall})
	if r := decode(t, rec); r.Result == nil {
		t.Errorf("plain result expected: %s", rec.Body)
	}
	// A caller that accepts only JSON gets no relay at all.
	e.b.terminal = func(_ context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		if c.Relay != nil {
			t.Error("a JSON-only caller got a relay")
		}
		return okResult(context.Background(), c)
	}
	rec = e.do(t, req{token: aliceKey, body: weatherCall, header: map[string]string{"Accept": "application/json"}})
	decode(t, rec)
}

func TestRefusalAfterStreamingEndsTheStream(t *testing.T) {
	e := newEnv(t)
	e.b.terminal = func(_ context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		msg, _ := mcpwire.NewNotification("notifications/message", json.RawMessage(`{"level":"info","data":"working"}`))
		_ = c.Relay.Notify(msg)
		return nil, pipeline.Refuse(pipeline.ReasonUpstreamTimeout, "upstream too slow")
	}
	msgs := events(t, e.do(t, req{token: aliceKey, body: weatherCall}))
	if len(msgs) != 2 || msgs[1].Kind() != mcpwire.KindResult || !strings.Contains(string(msgs[1].Result), `"isError":true`) {
		t.Fatalf("events %v, want a log message then an isError result", msgs)
	}
}

// TestServerRequestRelayedAndAnswered: an upstream's elicitation reaches
// the caller on the call's stream under a gateway id; the caller's answer,
// POSTed in the same session, goes back with the upstream's id. Another
// agent's session cannot answer it.
func TestServerRequestRelayedAndAnswered(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	sid := e.initialize(t, aliceKey)
	bobSid := e.initialize(t, bobKey)

	got := make(chan []byte, 1)
	e.b.terminal = func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		if c.Relay == nil || c.Relay.Ask == nil {
			t.Error("no way to ask the caller")
			return okResult(ctx, c)
		}
		ch, err := c.Relay.Ask(ctx, []byte(`{"jsonrpc":"2.0","id":"up-9","method":"elicitation/create","params":{"message":"Which city?"}}`))
		if err != nil {
			t.Error(err)
			return okResult(ctx, c)
		}
		select {
		case a := <-ch:
			got <- a
		case <-time.After(10 * time.Second):
			t.Error("no answer")
		}
		return okResult(ctx, c)
	}

	post := func(token, session, body string) *http.Response {
		hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(body))
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Accept", "application/json, text/event-stream")
		hr.Header.Set("Authorization", "Bearer "+token)
		hr.Header.Set("Mcp-Session-Id", session)
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post(aliceKey, sid, weatherCall)
	defer resp.Body.Close()
	r := mcpwire.NewEventReader(resp.Body, 1<<20)
	ev, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	ask, err := mcpwire.Parse(ev.Data)
	if err != nil || ask.Method != "elicitation/create" || string(ask.ID) == `"up-9"` {
		t.Fatalf("relayed request %s (%v), want elicitation/create under a gateway id", ev.Data, err)
	}
	answer := `{"jsonrpc":"2.0","id":` + string(ask.ID) + `,"result":{"action":"accept","content":{"city":"Oslo"}}}`
	// Bob cannot answer Alice's request.
	if br := post(bobKey, bobSid, answer); br.StatusCode != http.StatusBadRequest {
		t.Errorf("another agent's answer: HTTP %d, want 400", br.StatusCode)
	}
	if ar := post(aliceKey, sid, answer); ar.StatusCode != http.StatusAccepted {
		t.Fatalf("answer: HTTP %d, want 202", ar.StatusCode)
	}
	a := <-got
	m, err := mcpwire.Parse(a)
	if err != nil || string(m.ID) != `"up-9"` || !strings.Contains(string(m.Result), "Oslo") {
		t.Fatalf("answer passed upstream as %s (%v), want id up-9", a, err)
	}
	ev, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := mcpwire.Parse(ev.Data); res == nil || res.Kind() != mcpwire.KindResult {
		t.Errorf("last event %s, want the result", ev.Data)
	}
	// Answering twice: nothing waits any more.
	if ar := post(aliceKey, sid, answer); ar.StatusCode != http.StatusBadRequest {
		t.Errorf("second answer: HTTP %d, want 400", ar.StatusCode)
	}
}

func modernHeaders(method, name string) map[string]string {
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": method}
	if name != "" {
		h["Mcp-Name"] = name
	}
	return h
}

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`

func TestModernEra(t *testing.T) {
	e := newEnv(t)
	// server/discover needs no session.
	rec := e.do(t, req{token: aliceKey, header: modernHeaders("server/discover", ""),
		body: `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{` + modernMeta + `}}`})
	r := decode(t, rec)
	if r.Error != nil || !strings.Contains(string(r.Result), `"2026-07-28"`) {
		t.Fatalf("server/discover: %s", rec.Body)
	}
	// tools/call without a session.
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"Oslo"},` + modernMeta + `}}`
	rec = e.do(t, req{token: aliceKey, header: modernHeaders("tools/call", "demo__weather"), body: call})
	if r := decode(t, rec); r.Error != nil || !strings.Contains(string(r.Result), "sunny") {
		t.Fatalf("modern tools/call: %s", rec.Body)
	}
	for _, tt := range []struct {
		name   string
		header map[string]string
		body   string
		code   int
	}{
		{"method header differs", modernHeaders("tools/list", "demo__weather"), call, -32020},
		{"name header differs", modernHeaders("tools/call", "demo__pay"), call, -32020},
		{"name header missing", modernHeaders("tools/call", ""), call, -32020},
		{"version header differs from _meta", map[string]string{"Mcp-Protocol-Version": "2025-11-25", "Mcp-Method": "tools/call", "Mcp-Name": "demo__weather"}, call, -32020},
		{"unsupported version in _meta", modernHeaders("tools/call", "demo__weather"),
			strings.Replace(call, `"2026-07-28"`, `"2027-01-01"`, 1), -32022},
		{"modern header without _meta", modernHeaders("ping", ""), `{"jsonrpc":"2.0","id":3,"method":"ping"}`, -32022},
	} {
		rec := e.do(t, req{token: aliceKey, header: tt.header, body: tt.body})
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400 (%s)", tt.name, rec.Code, rec.Body)
			continue
		}
		if r := decode(t, rec); r.Error == nil || r.Error.Code != tt.code {
			t.Errorf("%s: %s, want error %d", tt.name, rec.Body, tt.code)
		}
	}
	if len(e.b.recorded()) != 1 {
		t.Errorf("%d calls reached the pipeline, want only the good one", len(e.b.recorded()))
	}
	// A modern caller cannot answer server requests: Ask is nil.
	e.b.terminal = func(_ context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		if c.Relay != nil && c.Relay.Ask != nil {
			t.Error("a modern caller was offered server requests")
		}
		return okResult(context.Background(), c)
	}
	e.do(t, req{token: aliceKey, header: modernHeaders("tools/call", "demo__weather"), body: call})
	// A legacy caller gets no 2026 multi-round-trip result.
	e.b.terminal = func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		return &pipeline.Result{Body: json.RawMessage(`{"resultType":"input_required","requestState":"opaque"}`)}, nil
	}
	rec = e.do(t, req{token: aliceKey, body: `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"Oslo"}}}`})
	if r := decode(t, rec); !strings.Contains(string(r.Result), `"isError":true`) || strings.Contains(string(r.Result), "opaque") {
		t.Errorf("legacy caller, input_required upstream: %s", rec.Body)
	}
}
