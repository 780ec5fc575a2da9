package upstream_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// connClient is the HTTP client Conns gives a Driver's Open for u.
func connClient(t *testing.T, r upstream.Resolver, opts ...upstream.Option) *http.Client {
	t.Helper()
	c := upstream.NewConns(testLogger(t), upstream.Driver[*http.Client]{
		Name:      "FAKE",
		Protocols: []configv1.Protocol{configv1.Protocol_PROTOCOL_LLM},
		Open:      func(_ *upstream.Settings, hc *http.Client) (*http.Client, error) { return hc, nil },
		Close:     func(context.Context, *http.Client) error { return nil },
	}, opts...)
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.Resolve(r, "demo")
	if err != nil {
		t.Fatal(err)
	}
	cn, err := c.Acquire(&s)
	if err != nil {
		t.Fatal(err)
	}
	cn.Release()
	return cn.HTTP
}

// answer is what one send got, in comparable form.
type answer struct {
	status int
	body   string
	err    string
	header http.Header // as the upstream received it
}

// TestSenderSendsAsTheClient: a Sender sends what Conns' HTTP client
// sends (the upstream's credential and nothing of the caller's, the hop
// header) and returns the same answers and the same errors, redirects
// and refusals included, through both transports.
func TestSenderSendsAsTheClient(t *testing.T) {
	var (
		mu   sync.Mutex
		seen http.Header
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})
	redirect := func(status int, loc string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", loc)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "moved")
		}
	}
	mux.Handle("/found", redirect(http.StatusFound, "/ok"))
	mux.Handle("/found-bad", redirect(http.StatusFound, "%zz"))
	mux.Handle("/temporary", redirect(http.StatusTemporaryRedirect, "/ok"))
	mux.Handle("/temporary-bad", redirect(http.StatusTemporaryRedirect, "http://[::1"))
	mux.Handle("/permanent-bad", redirect(http.StatusPermanentRedirect, "%zz"))
	mux.Handle("/multiple-bad", redirect(http.StatusMultipleChoices, "%zz"))
	mux.HandleFunc("/refused", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	})
	mux.HandleFunc("/hangup", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = c.Close()
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	type request struct {
		path string
		body string // "": none
		// noGetBody drops the body's GetBody (a 307 is then returned
		// as is).
		noGetBody bool
	}
	requests := []request{
		{path: "/ok", body: `{"a":1}`},
		{path: "/ok"},
		{path: "/found", body: "{}"},
		{path: "/found-bad", body: "{}"},
		{path: "/temporary", body: "{}"},
		{path: "/temporary-bad", body: "{}"},
		{path: "/temporary-bad", body: "{}", noGetBody: true},
		{path: "/permanent-bad"},
		{path: "/multiple-bad"},
		{path: "/refused", body: "{}"},
		{path: "/hangup", body: "{}"},
		{path: "/too-large", body: strings.Repeat("x", 2<<20)},
		{path: "dead"},
	}
	send := func(t *testing.T, do func(*http.Request) (*http.Response, error), rq request) answer {
		u := srv.URL + rq.path
		if rq.path == "dead" {
			u = deadURL + "/ok"
		}
		var body io.Reader
		if rq.body != "" {
			body = strings.NewReader(rq.body)
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, body)
		if err != nil {
			t.Fatal(err)
		}
		if rq.noGetBody {
			req.GetBody = nil
		}
		req.Header.Set("Authorization", "Bearer the-agents-own")
		req.Header.Set("Cookie", "session=agent")
		req.Header.Set("X-Caller", "kept")
		mu.Lock()
		seen = nil
		mu.Unlock()
		resp, err := do(req)
		var a answer
		if err != nil {
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Errorf("%s: error %T, want a *url.Error", rq.path, err)
			}
			a.err = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			a.status, a.body = resp.StatusCode, string(b)
		}
		mu.Lock()
		a.header = seen
		mu.Unlock()
		return a
	}
	for _, h1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "h1"}[h1], func(t *testing.T) {
			u := plain("demo", srv.URL+"/ok", "tok")
			u.Limits = &configv1.UpstreamLimits{MaxRequestBytes: 1 << 20}
			hc := connClient(t, resolverFor(u), upstream.WithHTTP1(h1), upstream.WithHopID("dp-test"))
			sender := upstream.SenderFor(hc)
			for _, rq := range requests {
				want := send(t, hc.Do, rq)
				got := send(t, sender.Do, rq)
				if got.status != want.status || got.body != want.body || got.err != want.err {
					t.Errorf("%s: Sender got %d %q %q; the client %d %q %q", rq.path, got.status, got.body, got.err, want.status, want.body, want.err)
				}
				if !equalHeaders(got.header, want.header) {
					t.Errorf("%s: the upstream received %v from the Sender, %v from the client", rq.path, got.header, want.header)
				}
				if want.header != nil {
					if v := want.header.Get("Authorization"); v != "Bearer "+secret {
						t.Errorf("%s: Authorization %q, want the upstream's credential", rq.path, v)
					}
					if v := want.header.Get("Cookie"); v != "" {
						t.Errorf("%s: the caller's cookie %q reached the upstream", rq.path, v)
					}
					if v := want.header.Get("Portcullis-Hop"); v != "dp-test" {
						t.Errorf("%s: hop header %q", rq.path, v)
					}
				}
			}
		})
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// TestSenderFallsBack: a request http.Client would change before sending
// it (one without a header map) goes through the client itself, and gets
// the upstream's credential as well.
func TestSenderFallsBack(t *testing.T) {
	b := startBackend(t, secret)
	hc := connClient(t, resolverFor(plain("demo", b.url(), "tok")), upstream.WithHTTP1(true))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url(), strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = nil
	resp, err := upstream.SenderFor(hc).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got := b.requests(); len(got) != 1 || got[0].Get("Authorization") != "Bearer "+secret {
		t.Fatalf("upstream received %v", got)
	}
}
