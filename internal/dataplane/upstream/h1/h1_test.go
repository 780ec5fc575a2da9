package h1_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/h1"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// server is an httptest server that counts the connections it accepted.
type server struct {
	*httptest.Server
	conns  atomic.Int64
	closed atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// fallback records the requests h1 does not serve.
type fallback struct{ got []*http.Request }

func (f *fallback) RoundTrip(req *http.Request) (*http.Response, error) {
	f.got = append(f.got, req)
	return &http.Response{StatusCode: http.StatusTeapot, Body: http.NoBody, Request: req}, nil
}

func newTransport(t *testing.T) *h1.Transport {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &h1.Transport{Dial: d.DialContext, Fallback: &fallback{}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// do sends a POST with body to url and returns the status and the body
// read to its end.
func do(ctx context.Context, tr http.RoundTripper, url, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"method":%q,"body":%q,"ct":%q}`, r.Method, b, r.Header.Get("Content-Type"))
}

// TestAnswers: requests reach the server as sent and answers come back
// whole, whatever their framing; a kept-alive connection is reused.
func TestAnswers(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		want      string
		wantConns int64 // connections for 5 requests
	}{
		{name: "content-length", handler: echo, want: `{"method":"POST","body":"{\"a\":1}","ct":"application/json"}`, wantConns: 1},
		{name: "chunked", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			for _, part := range []string{"one ", "two ", "three"} {
				_, _ = io.WriteString(w, part)
				w.(http.Flusher).Flush()
			}
		}, want: "one two three", wantConns: 1},
		{name: "connection close", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		}, want: "bye", wantConns: 5},
		{name: "interim 103 before the answer", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</x>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "final")
		}, want: "final", wantConns: 1},
		{name: "no body", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }, want: "", wantConns: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			srv := newServer(t, tc.handler)
			tr := newTransport(t)
			for i := range 5 {
				_, got, err := do(ctx, tr, srv.URL+"/mcp", `{"a":1}`)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got != tc.want {
					t.Fatalf("request %d: body %q, want %q", i, got, tc.want)
				}
			}
			if n := srv.conns.Load(); n != tc.wantConns {
				t.Errorf("the server accepted %d connections, want %d", n, tc.wantConns)
			}
		})
	}
}

// TestStreamsAnEventStream: each event of a streamed answer is readable
// as soon as the server sends it.
func TestStreamsAnEventStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	next := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			if i > 0 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			_, _ = fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	tr := newTransport(t)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprintf("data: {\"n\":%d}\n", i); line != want {
			t.Fatalf("event %d: %q, want %q", i, line, want)
		}
		_, _ = br.ReadString('\n') // the blank line
		if i < 2 {
			next <- struct{}{} // the server sends the next event only now
		}
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last event: %v, want EOF", err)
	}
	// Read to its end, the connection serves the next request.
	close(next)
	if _, _, err := do(ctx, tr, srv.URL, "{}"); err != nil {
		t.Fatal(err)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("the server accepted %d connections, want 1", n)
	}
}

// TestServerClosedIdleConnection: an idle connection the server closed is
// not reused; the next request dials a new one and succeeds.
func TestServerClosedIdleConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv := newServer(t, echo)
	tr := newTransport(t)
	if _, _, err := do(ctx, tr, srv.URL, "1"); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	harness.Await(t, 5*time.Second, "the server closed its connection", func() error {
		if srv.closed.Load() != 1 {
			return errors.New("still open")
		}
		return nil
	})
	if _, _, err := do(ctx, tr, srv.URL, "2"); err != nil {
		t.Fatalf("request after the server closed the idle connection: %v", err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("the server accepted %d connections, want 2", n)
	}
}

// TestContextBoundsTheCall: the request's deadline and cancellation end a
// call waiting for its answer or reading its body; the connection is
// closed (the server sees the call end), never reused.
func TestContextBoundsTheCall(t *testing.T) {
	tests := []struct {
		name    string
		stall   bool // stall before the header; else after the first event
		cancel  bool // cancel; else let the deadline pass
		wantErr error
	}{
		{name: "deadline before the answer", stall: true, wantErr: context.DeadlineExceeded},
		{name: "cancelled before the answer", stall: true, cancel: true, wantErr: context.Canceled},
		{name: "deadline while streaming", wantErr: context.DeadlineExceeded},
		{name: "cancelled while streaming", cancel: true, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			started, left := make(chan struct{}, 1), make(chan struct{}, 1)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				// Read to its end, the request's body lets the server
				// notice the connection closing.
				_, _ = io.Copy(io.Discard, r.Body)
				started <- struct{}{}
				if !tc.stall {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "data: {}\n\n")
					w.(http.Flusher).Flush()
				}
				<-r.Context().Done()
				left <- struct{}{}
			})
			tr := newTransport(t)
			var (
				ctx    context.Context
				cancel context.CancelFunc
			)
			if tc.cancel {
				ctx, cancel = context.WithCancel(t.Context())
			} else {
				ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
			}
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
			var err error
			if tc.stall {
				if tc.cancel {
					go func() {
						<-started // the request reached the server
						cancel()
					}()
				}
				_, err = tr.RoundTrip(req)
			} else {
				resp, rerr := tr.RoundTrip(req)
				if rerr != nil {
					t.Fatal(rerr)
				}
				br := bufio.NewReader(resp.Body)
				if _, rerr := br.ReadString('\n'); rerr != nil {
					t.Fatal(rerr)
				}
				if tc.cancel {
					cancel()
				}
				_, err = io.ReadAll(br)
				_ = resp.Body.Close()
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			select {
			case <-left:
			case <-time.After(5 * time.Second):
				t.Fatal("the server did not see the call end")
			}
		})
	}
}

// TestEarlyCloseClosesTheConnection: a body closed before its end closes
// its connection, which is not reused.
func TestEarlyCloseClosesTheConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 64<<10))
	})
	tr := newTransport(t)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 10)); err == nil {
		t.Fatal("a read after Close succeeded")
	}
	if _, _, err := do(ctx, tr, srv.URL, ""); err != nil {
		t.Fatal(err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("the server accepted %d connections, want 2", n)
	}
}

// TestAnswerBeforeTheWholeRequest: a server that refuses a request
// without reading its body still has its answer read.
func TestAnswerBeforeTheWholeRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusUnauthorized)
	})
	status, _, err := do(ctx, newTransport(t), srv.URL, strings.Repeat("x", 8<<20))
	if err != nil || status != http.StatusUnauthorized {
		t.Fatalf("status %d, %v; want 401", status, err)
	}
}

// TestFallback: what h1 does not serve goes to Fallback.
func TestFallback(t *testing.T) {
	fb := &fallback{}
	tr := &h1.Transport{Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("dialed")
	}, Fallback: fb}
	for _, u := range []string{"https://upstream.example/mcp", "ws://upstream.example/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTeapot {
			t.Errorf("%s: %v, %v; want the fallback's answer", u, resp, err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://upstream.example/", nil)
	req.Header.Set("Upgrade", "websocket")
	if resp, err := tr.RoundTrip(req); err != nil || resp.StatusCode != http.StatusTeapot {
		t.Errorf("upgrade: %v, %v; want the fallback's answer", resp, err)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://upstream.example/", strings.NewReader("{}"))
	req.Header.Set("Expect", "100-continue")
	if resp, err := tr.RoundTrip(req); err != nil || resp.StatusCode != http.StatusTeapot {
		t.Errorf("expect: %v, %v; want the fallback's answer", resp, err)
	}
	if len(fb.got) != 4 {
		t.Errorf("the fallback got %d requests, want 4", len(fb.got))
	}
}

// TestDialErrorIsReturned: a failed dial is returned as it is (callers
// tell a request that never left by it).
func TestDialErrorIsReturned(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, _, err = do(t.Context(), newTransport(t), "http://"+addr+"/", "{}")
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("err = %v, want a dial *net.OpError", err)
	}
}

// TestConcurrentCalls: calls in parallel each get their own connection
// and their own answer.
func TestConcurrentCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	srv := newServer(t, echo)
	tr := newTransport(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				body := fmt.Sprintf("%d-%d", g, i)
				_, got, err := do(ctx, tr, srv.URL, body)
				if err == nil && !strings.Contains(got, `"body":"`+body+`"`) {
					err = fmt.Errorf("answer %s to %s", got, body)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.conns.Load(); n > 8 {
		t.Errorf("the server accepted %d connections for 8 concurrent callers", n)
	}
}
