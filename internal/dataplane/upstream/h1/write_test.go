package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
)

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed bool
}

func (b *trackedBody) Close() error { b.closed = true; return nil }

// FuzzWriteRequest: writeRequest writes every request byte for byte as
// (*http.Request).Write does, fails where it fails, and closes the body.
// The inputs build requests of every kind: plain ones (written here) and
// the others (left to Write).
func FuzzWriteRequest(f *testing.F) {
	f.Add("POST", "http://127.0.0.1:8080/mcp", "Content-Type\x00application/json\x01Mcp-Session-Id\x00abc", `{"jsonrpc":"2.0"}`, uint8(0))
	f.Add("GET", "http://upstream.example/mcp?x=1&y=%20", "Accept\x00text/event-stream", "", uint8(0))
	f.Add("DELETE", "http://[::1]:9/", "Mcp-Session-Id\x00 padded ", "", uint8(0))
	f.Add("POST", "http://h/p", "X\x00a\nb\x01User-Agent\x00me", "body", uint8(1))
	f.Add("PUT", "http://h/p", "Host\x00other\x01Content-Length\x009\x01x-lower\x00v", "", uint8(2))
	f.Add("post", "http://h√/p", "Bad Name\x00v", "abc", uint8(3))
	f.Add("PATCH", "http://h/p", "", "abc", uint8(4))
	f.Add("POST", "http://h/p", "", "abc", uint8(5))
	f.Add("POST", "http://h/p", "A\x00\x01A\x00\x01B\x00", "", uint8(6))
	f.Fuzz(func(t *testing.T, method, rawURL, headers, body string, variant uint8) {
		build := func() (*http.Request, *trackedBody) {
			var rd io.Reader
			switch variant % 4 {
			case 1:
				rd = bytes.NewReader([]byte(body))
			case 2:
				rd = bytes.NewBufferString(body)
			case 3:
				rd = io.MultiReader(strings.NewReader(body)) // not in memory
			default:
				if body != "" {
					rd = strings.NewReader(body)
				}
			}
			req, err := http.NewRequestWithContext(context.Background(), method, rawURL, rd)
			if err != nil {
				return nil, nil
			}
			for _, kv := range strings.Split(headers, "\x01") {
				if k, v, ok := strings.Cut(kv, "\x00"); ok {
					req.Header[k] = append(req.Header[k], v)
				}
			}
			var tb *trackedBody
			switch variant / 4 % 8 {
			case 1: // a length that is not the body's
				req.ContentLength++
			case 2:
				if req.ContentLength > 0 {
					req.ContentLength--
				}
			case 3:
				req.Close = true
			case 4:
				req.Host = "override.example"
			case 5:
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{}))
			case 6: // a body whose close is seen
				if req.Body != nil && req.Body != http.NoBody {
					tb = &trackedBody{Reader: req.Body}
					req.Body = tb
				}
			}
			return req, tb
		}
		want, wantBody := build()
		if want == nil {
			return
		}
		got, gotBody := build()
		var wbuf, gbuf bytes.Buffer
		ww, gw := bufio.NewWriter(&wbuf), bufio.NewWriter(&gbuf)
		werr := want.Write(ww)
		_ = ww.Flush()
		var lr io.LimitedReader
		gerr := writeRequest(gw, &lr, got)
		_ = gw.Flush()
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Fatalf("error %v, want %v", gerr, werr)
		}
		if !bytes.Equal(gbuf.Bytes(), wbuf.Bytes()) {
			t.Fatalf("wrote\n%q\nwant\n%q", gbuf.Bytes(), wbuf.Bytes())
		}
		if wantBody != nil && wantBody.closed != gotBody.closed {
			t.Fatalf("body closed %v, want %v", gotBody.closed, wantBody.closed)
		}
		if lr.R != nil {
			t.Fatal("the reused reader still holds the body")
		}
	})
}

// TestWriteRequestPlain: the request mcpclient sends is written here,
// without allocating.
func TestWriteRequestPlain(t *testing.T) {
	body := []byte(`{"jsonrpc":"2.0","id":"pc-1","method":"tools/call","params":{}}`)
	bw := bufio.NewWriterSize(io.Discard, bufSize)
	var lr io.LimitedReader
	allocs := testing.AllocsPerRun(100, func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://127.0.0.1:9/mcp", bytes.NewReader(body))
		req.Header["Content-Type"] = []string{"application/json"}
		req.Header["Mcp-Session-Id"] = []string{"s-1"}
		if _, _, ok := plainRequest(req); !ok {
			t.Fatal("not plain")
		}
		if err := writeRequest(bw, &lr, req); err != nil {
			t.Fatal(err)
		}
	})
	// What NewRequestWithContext itself allocates; writing adds none.
	req0 := testing.AllocsPerRun(100, func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://127.0.0.1:9/mcp", bytes.NewReader(body))
		req.Header["Content-Type"] = []string{"application/json"}
		req.Header["Mcp-Session-Id"] = []string{"s-1"}
	})
	if allocs > req0 {
		t.Errorf("writing a plain request allocates %v times", allocs-req0)
	}
}
