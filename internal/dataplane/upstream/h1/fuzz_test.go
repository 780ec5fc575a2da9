package h1_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/h1"
)

// FuzzResponse: whatever bytes a server answers with, a call ends within
// its deadline without a panic, and the transport serves the next call.
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {}\n\n",
		"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
		"HTTP/1.0 200 OK\r\n\r\nclose-delimited",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		first := true
		tr := &h1.Transport{Fallback: http.DefaultTransport, Dial: func(context.Context, string, string) (net.Conn, error) {
			client, srv := net.Pipe()
			out := answer
			if !first {
				out = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
			}
			first = false
			go serveOnce(srv, out)
			return client, nil
		}}
		defer tr.CloseIdleConnections()
		call(t, tr)
		call(t, tr)
	})
}

// serveOnce reads one request head from c, answers with out and closes c.
func serveOnce(c net.Conn, out []byte) {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, req.Body)
	_, _ = c.Write(out)
}

// call makes one request and reads its answer, if any, to its end; it
// must return within the deadline.
func call(t *testing.T, tr *h1.Transport) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://upstream.test/mcp", strings.NewReader("{}"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a call outlived its deadline")
	}
}
