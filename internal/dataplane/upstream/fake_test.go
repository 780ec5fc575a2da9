package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// These tests drive the generic layer with a tiny fake protocol: its
// session sends one POST per call with the connection's HTTP client, and
// its upstreams are configured as PROTOCOL_LLM (any protocol would do).
// What MCP adds is tested in package protocol/mcp.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "upstream-secret-value"

// ownHeader is a header the fake protocol sets itself.
const ownHeader = "X-Fake-Session"

// testLogger writes to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// backend is a fake upstream: it answers every POST "ok", after checking
// the bearer token when it requires one, or fails with status.
type backend struct {
	srv           *httptest.Server
	requireBearer string
	status        atomic.Int32 // non-zero: answer every request with it

	mu       sync.Mutex
	accepted []http.Header // headers of the requests it served
}

func startBackend(t *testing.T, requireBearer string) *backend {
	t.Helper()
	b := &backend{requireBearer: requireBearer}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if b.requireBearer != "" && r.Header.Get("Authorization") != "Bearer "+b.requireBearer {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if s := b.status.Load(); s != 0 {
		http.Error(w, "induced failure", int(s))
		return
	}
	b.mu.Lock()
	b.accepted = append(b.accepted, r.Header.Clone())
	b.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

// requests are the headers of the requests the backend served.
func (b *backend) requests() []http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]http.Header(nil), b.accepted...)
}

func (b *backend) url() string { return b.srv.URL + "/v1" }

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

// session is the fake protocol's session with one upstream. Its calls
// may always be repeated; connection failures are retried.
type session struct {
	id     int64
	url    string
	hc     *http.Client
	closed atomic.Bool
}

// statusError is an upstream's non-200 answer.
type statusError struct{ status int }

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

func (s *session) send(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set(ownHeader, fmt.Sprint(s.id))
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	return nil
}

// classifier is the fake protocol's resilience.Classifier.
type classifier struct{}

func (classifier) Outcome(err error) resilience.Outcome {
	if upstream.ConfigError(err) {
		return resilience.Excluded
	}
	return resilience.Failure
}

func (classifier) Retryable(err error) bool {
	return !upstream.ConfigError(err) && upstream.ConnectionError(err)
}

// explain is the fake protocol's upstream.Explain.
func explain(err error) (string, bool) {
	var se *statusError
	if errors.As(err, &se) {
		return fmt.Sprintf("it answered HTTP %d", se.status), true
	}
	return "", false
}

// fake is the fake protocol: its connections, and every session it
// opened.
type fake struct {
	t     *testing.T
	conns *upstream.Conns[*session]

	mu       sync.Mutex
	sessions []*session
}

func newFake(t *testing.T, opts ...upstream.Option) *fake {
	t.Helper()
	f := &fake{t: t}
	f.conns = upstream.NewConns(testLogger(t), upstream.Driver[*session]{
		Name:      "FAKE",
		Protocols: []configv1.Protocol{configv1.Protocol_PROTOCOL_LLM},
		Headers:   []string{ownHeader},
		Open: func(s *upstream.Settings, hc *http.Client) (*session, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			ses := &session{id: int64(len(f.sessions) + 1), url: s.URL, hc: hc}
			f.sessions = append(f.sessions, ses)
			return ses, nil
		},
		Close: func(_ context.Context, s *session) error {
			if s.closed.Swap(true) {
				return errors.New("closed twice")
			}
			return nil
		},
	}, opts...)
	t.Cleanup(func() {
		if err := f.conns.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

// open counts the sessions opened and not closed.
func (f *fake) open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.sessions {
		if !s.closed.Load() {
			n++
		}
	}
	return n
}

// call makes one call to upstream "demo" the way a protocol does, and
// returns the session it used.
func (f *fake) call(ctx context.Context, r upstream.Resolver) (*session, error) {
	s, err := f.conns.Resolve(r, "demo")
	if err != nil {
		return nil, upstream.Refusal("demo", err, explain)
	}
	cn, err := f.conns.Acquire(&s)
	if err != nil {
		return nil, upstream.Refusal("demo", err, explain)
	}
	defer cn.Release()
	// Every fake call may be repeated: only the classifier and the
	// settings limit retries.
	_, err = resilience.Do(ctx, cn.Guard, resilience.Call{Op: "send", Timeout: s.Timeout, Repeatable: true, MaxRetries: s.MaxRetries}, classifier{},
		func(ctx context.Context) (struct{}, error) { return struct{}{}, cn.Session.send(ctx) })
	if err != nil {
		return cn.Session, upstream.Fail(ctx, testLogger(f.t), &s, "send", "call", err, explain)
	}
	return cn.Session, nil
}

// plain is upstream name at url speaking the fake protocol, with a bearer
// credential from secret (none when secret is "").
func plain(name, url, secret string) *configv1.Upstream {
	u := upstreamtest.MCP(name, url, secret)
	u.Protocol = configv1.Protocol_PROTOCOL_LLM
	return u
}

func resolverFor(u *configv1.Upstream) *upstreamtest.Resolver {
	r := upstreamtest.NewResolver()
	r.SetUpstream(u)
	r.SetSecret("tok", []byte(secret), "127.0.0.1")
	return r
}

// wantRefusal asserts err is a Refusal with reason and a message that
// carries none of the given secrets, and returns the message.
func wantRefusal(t *testing.T, err error, reason pipeline.Reason, secrets ...string) string {
	t.Helper()
	var ref *pipeline.Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("err = %v, want a %s refusal", err, reason)
	}
	if ref.Reason != reason {
		t.Fatalf("refusal = %v, want reason %s", ref, reason)
	}
	for _, s := range secrets {
		if strings.Contains(ref.Message, s) {
			t.Fatalf("refusal message %q leaks %q", ref.Message, s)
		}
	}
	return ref.Message
}
