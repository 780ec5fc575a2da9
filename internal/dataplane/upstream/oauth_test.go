package upstream_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// tokenServer is an OAuth token endpoint for the client-credentials grant
// of client "gw" with secret "client-secret"; it issues token tok and
// counts requests. fail makes it refuse.
type tokenServer struct {
	srv      *httptest.Server
	requests atomic.Int32
	fail     atomic.Bool
}

func startTokenServer(t *testing.T, tok string) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		_ = r.ParseForm()
		id, secret, basic := r.BasicAuth()
		if !basic {
			id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
		}
		if ts.fail.Load() || r.Form.Get("grant_type") != "client_credentials" || id != "gw" || secret != "client-secret" ||
			r.Form.Get("audience") != "mcp-upstream" || r.Form.Get("scope") != "tools:call" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func oauthUpstream(url, tokenURL string) *configv1.Upstream {
	u := plain("demo", url, "")
	u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{
		OauthClientCredentials: &configv1.OAuthClientCredentials{
			TokenUrl: tokenURL, ClientId: "gw", ClientSecret: "oauth-secret", Scopes: []string{"tools:call"}, Audience: "mcp-upstream",
		}}}
	return u
}

// TestOAuthClientCredentials: the gateway obtains a token with the
// upstream's client credentials, sends it as the bearer, reuses it across
// calls, and refuses clearly (naming no secret) when the token endpoint
// refuses.
func TestOAuthClientCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	const accessToken = "issued-access-token"
	tokens := startTokenServer(t, accessToken)
	up := startBackend(t, accessToken)
	r := upstreamtest.NewResolver()
	r.SetUpstream(oauthUpstream(up.url(), tokens.srv.URL))
	r.SetSecret("oauth-secret", []byte("client-secret"), "127.0.0.1")
	f := newFake(t)
	for i := range 3 {
		if _, err := f.call(ctx, r); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := tokens.requests.Load(); n != 1 {
		t.Errorf("%d token requests for 3 calls, want 1 (the token is reused)", n)
	}
	for _, h := range up.requests() {
		if h.Get("Authorization") != "Bearer "+accessToken {
			t.Fatalf("upstream got Authorization %q", h.Get("Authorization"))
		}
	}

	// A token endpoint that refuses: a clear refusal, no secret in it.
	refusing := startTokenServer(t, accessToken)
	refusing.fail.Store(true)
	r2 := upstreamtest.NewResolver()
	r2.SetUpstream(oauthUpstream(up.url(), refusing.srv.URL))
	r2.SetSecret("oauth-secret", []byte("client-secret"), "127.0.0.1")
	_, err := newFake(t).call(ctx, r2)
	msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, "client-secret", accessToken)
	if !strings.Contains(msg, "OAuth token endpoint") {
		t.Errorf("refusal %q, want it to name the token endpoint", msg)
	}
	// One token attempt: x/oauth2 tries both ways of sending the client
	// credentials (header, then form) before giving up; the call is not
	// retried on top.
	if n := refusing.requests.Load(); n != 2 {
		t.Errorf("%d token requests after a refusal, want 2 (one attempt, both client-auth styles)", n)
	}
}

// TestOAuthClientSecretOnlyToBoundHosts: the client secret goes to the
// token endpoint, and the token it buys to the upstream, only when the
// secret is bound to both hosts; otherwise nothing is sent to either.
func TestOAuthClientSecretOnlyToBoundHosts(t *testing.T) {
	const accessToken = "issued-access-token"
	tokens := startTokenServer(t, accessToken)
	up := startBackend(t, accessToken)
	hostOf := func(raw string) string { u, _ := url.Parse(raw); return u.Host }
	for name, hosts := range map[string][]string{
		"only the token endpoint": {hostOf(tokens.srv.URL)},
		"only the upstream":       {hostOf(up.url())},
	} {
		t.Run(name, func(t *testing.T) {
			r := upstreamtest.NewResolver()
			r.SetUpstream(oauthUpstream(up.url(), tokens.srv.URL))
			r.SetSecret("oauth-secret", []byte("client-secret"), hosts...)
			_, err := newFake(t).call(t.Context(), r)
			wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, "client-secret", accessToken)
			if n := tokens.requests.Load(); n != 0 {
				t.Errorf("the token endpoint got %d requests", n)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("the upstream got %d requests", n)
			}
		})
	}
	r := upstreamtest.NewResolver()
	r.SetUpstream(oauthUpstream(up.url(), tokens.srv.URL))
	r.SetSecret("oauth-secret", []byte("client-secret"), hostOf(tokens.srv.URL), hostOf(up.url()))
	if _, err := newFake(t).call(t.Context(), r); err != nil {
		t.Fatalf("bound to both: %v", err)
	}
}
