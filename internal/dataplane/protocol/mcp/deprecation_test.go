package mcp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// TestDeprecationNotice: a call on a deprecated version before its sunset
// is answered with the notice in _meta (the upstream's own _meta members
// kept) and Deprecation/Sunset headers; a version not deprecated gets
// neither.
func TestDeprecationNotice(t *testing.T) {
	since, sunset := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		deprecation *pipeline.Deprecation
		body        string
		wantNotice  bool
		wantOwnMeta bool
	}{
		{name: "not deprecated", body: `{"content":[]}`},
		{name: "deprecated", deprecation: &pipeline.Deprecation{Since: since, Sunset: sunset, Message: "use v2", Replacement: 2},
			body: `{"content":[]}`, wantNotice: true},
		{name: "deprecated, upstream _meta kept", deprecation: &pipeline.Deprecation{Since: since, Sunset: sunset, Replacement: 2},
			body: `{"content":[],"_meta":{"trace":"abc"}}`, wantNotice: true, wantOwnMeta: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for i := range e.cfg.tools {
				if e.cfg.tools[i].Action == weatherTool.Action {
					e.cfg.tools[i].Version, e.cfg.tools[i].Deprecation = 1, tc.deprecation
				}
			}
			e.b.terminal = func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return &pipeline.Result{Body: json.RawMessage(tc.body)}, nil
			}
			rec := e.do(t, req{token: aliceKey, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + weatherTool.Action + `","arguments":{"city":"Oslo"}}}`})
			r := decode(t, rec)
			var res struct {
				Meta struct {
					Notice *struct {
						Tool        string `json:"tool"`
						Version     int64  `json:"version"`
						Deprecated  string `json:"deprecated"`
						Sunset      string `json:"sunset"`
						Message     string `json:"message"`
						Replacement int64  `json:"replacement"`
					} `json:"io.portcullis/deprecation"`
					Trace string `json:"trace"`
				} `json:"_meta"`
			}
			if err := json.Unmarshal(r.Result, &res); err != nil {
				t.Fatalf("result %s: %v", r.Result, err)
			}
			n := res.Meta.Notice
			if (n != nil) != tc.wantNotice || (rec.Header().Get("Sunset") != "") != tc.wantNotice || (rec.Header().Get("Deprecation") != "") != tc.wantNotice {
				t.Fatalf("result %s, headers %v: want notice %t", r.Result, rec.Header(), tc.wantNotice)
			}
			if (res.Meta.Trace == "abc") != tc.wantOwnMeta {
				t.Errorf("upstream _meta in %s, want kept %t", r.Result, tc.wantOwnMeta)
			}
			if !tc.wantNotice {
				return
			}
			if n.Tool != weatherTool.Action || n.Version != 1 || n.Deprecated != "2026-01-01T00:00:00Z" || n.Sunset != "2026-02-01T00:00:00Z" || n.Replacement != 2 ||
				n.Message != tc.deprecation.Message {
				t.Errorf("notice %+v", *n)
			}
			if got := rec.Header().Get("Sunset"); got != "Sun, 01 Feb 2026 00:00:00 GMT" {
				t.Errorf("Sunset %q (RFC 8594: an HTTP-date)", got)
			}
			if got, want := rec.Header().Get("Deprecation"), "@1767225600"; got != want {
				t.Errorf("Deprecation %q, want %q (RFC 9745: @<unix seconds>)", got, want)
			}
			if rec.Code != http.StatusOK {
				t.Errorf("status %d", rec.Code)
			}
		})
	}
}
