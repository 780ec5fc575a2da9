package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/test/harness"
)

func TestCredentialAttached(t *testing.T) {
	tests := []struct {
		name       string
		credential *configv1.UpstreamCredential
		requireTok string
		wantHeader string
		wantValue  string
	}{
		{
			name: "bearer",
			credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{
				Bearer: &configv1.BearerCredential{Secret: "tok"}}},
			requireTok: secret,
			wantHeader: "Authorization", wantValue: "Bearer " + secret,
		},
		{
			name: "header",
			credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Header{
				Header: &configv1.HeaderCredential{Header: "x-api-key", Secret: "tok"}}},
			wantHeader: "X-Api-Key", wantValue: secret,
		},
		{name: "none", wantHeader: "Authorization", wantValue: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			b := startBackend(t, tc.requireTok)
			u := plain("demo", b.url(), "")
			u.Credential = tc.credential
			if _, err := newFake(t).call(ctx, resolverFor(u)); err != nil {
				t.Fatalf("call: %v", err)
			}
			got := b.requests()
			if len(got) != 1 {
				t.Fatalf("upstream served %d requests, want 1", len(got))
			}
			if v := got[0].Get(tc.wantHeader); v != tc.wantValue {
				t.Errorf("upstream got %s %q, want %q", tc.wantHeader, v, tc.wantValue)
			}
			if tc.wantHeader != "Authorization" && got[0].Get("Authorization") != "" {
				t.Errorf("upstream got Authorization %q, want none", got[0].Get("Authorization"))
			}
		})
	}
}

// TestSettingsChangeReplacesTheConnection: a credential change makes a new
// session; the old one is closed once the last call using it ends.
func TestSettingsChangeReplacesTheConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b := startBackend(t, "")
	f := newFake(t)
	r := resolverFor(plain("demo", b.url(), "tok"))

	first, err := f.call(ctx, r)
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	// A call still holds the first connection when the settings change.
	s, err := f.conns.Resolve(r, "demo")
	if err != nil {
		t.Fatal(err)
	}
	held, err := f.conns.Acquire(&s)
	if err != nil {
		t.Fatal(err)
	}
	r.SetSecret("tok", []byte("rotated-secret"), "127.0.0.1")
	second, err := f.call(ctx, r)
	if err != nil {
		t.Fatalf("call after rotation: %v", err)
	}
	if second == first {
		t.Fatal("a credential change kept the session")
	}
	if got := b.requests(); len(got) != 2 || got[1].Get("Authorization") != "Bearer rotated-secret" {
		t.Fatalf("upstream got %d requests, the last with %q; want the rotated secret", len(got), got[len(got)-1].Get("Authorization"))
	}
	if first.closed.Load() {
		t.Fatal("the replaced session was closed while a call still used it")
	}
	held.Release()
	harness.Await(t, 10*time.Second, "old session closed", func() error {
		if !first.closed.Load() || f.open() != 1 {
			return fmt.Errorf("first closed %v, %d open", first.closed.Load(), f.open())
		}
		return nil
	})
}

func TestPrune(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b := startBackend(t, "")
	f := newFake(t)
	r := resolverFor(plain("demo", b.url(), "tok"))
	first, err := f.call(ctx, r)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	f.conns.Prune(r) // unchanged: keeps the session
	if again, err := f.call(ctx, r); err != nil || again != first || first.closed.Load() {
		t.Fatalf("after a no-op prune: %v, same session %v, closed %v", err, again == first, first.closed.Load())
	}
	r.DeleteUpstream("demo")
	f.conns.Prune(r)
	harness.Await(t, 10*time.Second, "session of a removed upstream closed", func() error {
		if f.open() != 0 {
			return errors.New("the session is still open")
		}
		return nil
	})
	_, err = f.call(ctx, r)
	wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable)
}

func TestDeadUpstreamUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	u := plain("demo", "http://"+addr+"/v1", "tok")
	u.Resilience = &configv1.Resilience{Timeout: durationpb.New(20 * time.Second)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = newFake(t).call(ctx, resolverFor(u))
	// Unavailable rather than timeout: the refusal came from the failed
	// dial, not from waiting out the 20s.
	msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret, addr)
	if !strings.Contains(msg, "could not reach it") {
		t.Errorf("message %q, want it to say the upstream could not be reached", msg)
	}
}

func TestSlowUpstreamTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	u := plain("demo", srv.URL, "tok")
	const timeout = 300 * time.Millisecond
	u.Resilience = &configv1.Resilience{Timeout: durationpb.New(timeout)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := newFake(t).call(ctx, resolverFor(u))
	msg := wantRefusal(t, err, pipeline.ReasonUpstreamTimeout, secret)
	if !strings.Contains(msg, timeout.String()) {
		t.Errorf("message %q does not name the timeout", msg)
	}
}

func TestUnusableUpstreams(t *testing.T) {
	b := startBackend(t, "the-right-token")
	header := func(name string) *configv1.UpstreamCredential {
		return &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Header{
			Header: &configv1.HeaderCredential{Header: name, Secret: "tok"}}}
	}
	tests := []struct {
		name    string
		mutate  func(u *configv1.Upstream, r *upstreamtest.Resolver)
		wantMsg string
	}{
		{name: "unknown upstream", mutate: func(_ *configv1.Upstream, r *upstreamtest.Resolver) { r.DeleteUpstream("demo") },
			wantMsg: "not in the data plane's configuration"},
		{name: "missing secret", mutate: func(u *configv1.Upstream, _ *upstreamtest.Resolver) {
			u.Credential.GetBearer().Secret = "nope"
		}, wantMsg: "secret is missing"},
		{name: "wrong credential", mutate: func(*configv1.Upstream, *upstreamtest.Resolver) {},
			wantMsg: "refused the gateway's credential"},
		{name: "oauth client secret missing", mutate: func(u *configv1.Upstream, _ *upstreamtest.Resolver) {
			u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{
				OauthClientCredentials: &configv1.OAuthClientCredentials{TokenUrl: "https://idp.example/token", ClientSecret: "nope"}}}
		}, wantMsg: "OAuth client secret is missing"},
		{name: "forbidden credential header", mutate: func(u *configv1.Upstream, _ *upstreamtest.Resolver) {
			u.Credential = header("Cookie")
		}, wantMsg: "header name is not allowed"},
		{name: "a header the protocol sets", mutate: func(u *configv1.Upstream, _ *upstreamtest.Resolver) {
			u.Credential = header(strings.ToLower(ownHeader))
		}, wantMsg: "header name is not allowed"},
		{name: "secret splits a header", mutate: func(u *configv1.Upstream, r *upstreamtest.Resolver) {
			u.Credential = header("X-Key")
			r.SetSecret("tok", []byte(secret+"\r\nX-Evil: 1"), "127.0.0.1")
		}, wantMsg: "not a valid header value"},
		{name: "another protocol", mutate: func(u *configv1.Upstream, _ *upstreamtest.Resolver) {
			u.Protocol = configv1.Protocol_PROTOCOL_A2A
		}, wantMsg: "does not speak FAKE"},
		{name: "bad URL", mutate: func(u *configv1.Upstream, _ *upstreamtest.Resolver) { u.Url = "ftp://x/mcp" },
			wantMsg: "not a valid http(s) URL"},
		{name: "cloud metadata address", mutate: func(u *configv1.Upstream, r *upstreamtest.Resolver) {
			u.Url = "http://169.254.169.254/v1"
			r.SetSecret("tok", []byte(secret), "169.254.169.254")
		}, wantMsg: "egress policy"},
		{name: "secret not bound to the upstream's host", mutate: func(u *configv1.Upstream, _ *upstreamtest.Resolver) {
			u.Url = "http://127.0.0.2:1/v1"
		}, wantMsg: "secret is not bound to the host it would be sent to"},
		{name: "secret bound to nothing", mutate: func(_ *configv1.Upstream, r *upstreamtest.Resolver) {
			r.SetSecret("tok", []byte(secret))
		}, wantMsg: "secret is not bound to the host it would be sent to"},
		{name: "oauth token URL outside the binding", mutate: func(u *configv1.Upstream, r *upstreamtest.Resolver) {
			u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{
				OauthClientCredentials: &configv1.OAuthClientCredentials{TokenUrl: "https://idp.example/token", ClientSecret: "tok"}}}
		}, wantMsg: "secret is not bound to the host it would be sent to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			u := plain("demo", b.url(), "tok")
			r := upstreamtest.NewResolver()
			r.SetSecret("tok", []byte(secret), "127.0.0.1")
			tc.mutate(u, r)
			if tc.name != "unknown upstream" {
				r.SetUpstream(u)
			}
			_, err := newFake(t).call(ctx, r)
			msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret, "the-right-token")
			if !strings.Contains(msg, tc.wantMsg) || !strings.Contains(msg, `"demo"`) {
				t.Fatalf("message %q, want it to name the upstream and say %q", msg, tc.wantMsg)
			}
		})
	}
	if n := len(b.requests()); n != 0 {
		t.Fatalf("the upstream served %d requests, want none", n)
	}
}

func TestClosedConnsRefuse(t *testing.T) {
	b := startBackend(t, "")
	f := newFake(t)
	r := resolverFor(plain("demo", b.url(), "tok"))
	ses, err := f.call(t.Context(), r)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if err := f.conns.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !ses.closed.Load() {
		t.Error("Close left the session open")
	}
	_, err = f.call(t.Context(), r)
	if msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "shutting down") {
		t.Errorf("after Close: %q, want it to say the data plane is shutting down", msg)
	}
	if err := f.conns.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// The connection must not follow redirects: it would carry the credential
// to whatever origin the upstream names.
func TestNoRedirects(t *testing.T) {
	var leaked sync.Map
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization"), true)
		http.Error(w, "gotcha", http.StatusTeapot)
	}))
	defer evil.Close()
	redirect := httptest.NewServer(http.RedirectHandler(evil.URL+"/v1", http.StatusTemporaryRedirect))
	defer redirect.Close()

	_, err := newFake(t).call(t.Context(), resolverFor(plain("demo", redirect.URL+"/v1", "tok")))
	wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret)
	leaked.Range(func(k, _ any) bool {
		t.Errorf("redirect target received Authorization %q", k)
		return true
	})
}

// TestCredentialOnlyToBoundHosts is the data plane's half of issue 11's
// finding 5: an upstream whose URL is on a host its secret is not bound to
// (the port counts when the binding names one) is not called at all, so
// the secret never leaves; on a bound host and port it is.
func TestCredentialOnlyToBoundHosts(t *testing.T) {
	bound := startBackend(t, secret)
	other := startBackend(t, "")
	r := upstreamtest.NewResolver()
	r.SetUpstream(plain("demo", other.url(), "tok"))
	r.SetSecret("tok", []byte(secret), bound.addr())
	f := newFake(t)
	_, err := f.call(t.Context(), r)
	msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret)
	if !strings.Contains(msg, "not bound") {
		t.Errorf("refusal %q does not say the secret is not bound", msg)
	}
	if got := other.requests(); len(got) != 0 {
		t.Fatalf("the unbound upstream got %d requests (first Authorization %q)", len(got), got[0].Get("Authorization"))
	}
	r.SetUpstream(plain("demo", bound.url(), "tok"))
	if _, err := f.call(t.Context(), r); err != nil {
		t.Fatalf("call to the bound host: %v", err)
	}
}

// TestGuardFollowsTheSettings: an upstream never called is healthy; its
// guard survives a configuration swap that leaves its settings alone (an
// open breaker stays open) and is replaced, open breaker and all, when
// its breaker settings change.
func TestGuardFollowsTheSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b := startBackend(t, "")
	f := newFake(t)
	if ok, why := f.conns.Healthy("demo"); !ok {
		t.Fatalf("Healthy before any call = false: %s", why)
	}
	withBreaker := func(failures int32) *configv1.Upstream {
		u := plain("demo", b.url(), "tok")
		u.Resilience = &configv1.Resilience{Timeout: durationpb.New(10 * time.Second), MaxRetries: proto.Int32(0),
			BreakerFailures: failures, BreakerOpen: durationpb.New(time.Minute)}
		return u
	}
	r := resolverFor(withBreaker(1))
	b.status.Store(http.StatusServiceUnavailable)
	_, err := f.call(ctx, r)
	if msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "HTTP 503") {
		t.Fatalf("failure: %q, want the upstream's HTTP 503", msg)
	}
	if ok, _ := f.conns.Healthy("demo"); ok {
		t.Fatal("breaker not open after its one allowed failure")
	}
	b.status.Store(0)

	// The same settings in a new configuration: still open.
	r2 := resolverFor(proto.CloneOf(withBreaker(1)))
	_, err = f.call(ctx, r2)
	if msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "consecutive failures") {
		t.Fatalf("after an unchanged swap: %q, want the open breaker's refusal", msg)
	}

	// New breaker settings: a new guard.
	r2.SetUpstream(withBreaker(2))
	if _, err := f.call(ctx, r2); err != nil {
		t.Fatalf("call after the breaker settings changed: %v", err)
	}
	if ok, why := f.conns.Healthy("demo"); !ok {
		t.Fatalf("Healthy = false: %s", why)
	}
}

// TestHTTP1Transport: with WithHTTP1, calls to a plain http:// upstream
// carry its credential and nothing of the caller's, as with net/http's
// transport.
func TestHTTP1Transport(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b := startBackend(t, secret)
	f := newFake(t, upstream.WithHTTP1(true))
	r := resolverFor(plain("demo", b.url(), "tok"))
	for i := range 3 {
		if _, err := f.call(ctx, r); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	got := b.requests()
	if len(got) != 3 {
		t.Fatalf("upstream served %d requests, want 3", len(got))
	}
	for i, h := range got {
		if v := h.Get("Authorization"); v != "Bearer "+secret {
			t.Errorf("request %d: Authorization %q, want the upstream's credential", i, v)
		}
	}
}
