package oauthcc_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/oauthcc"
)

// TestSourceSendsTheClientSecretOnlyToBoundHosts: the token request goes
// out only when the token URL's host is one the client secret is bound to.
func TestSourceSendsTheClientSecretOnlyToBoundHosts(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":600}`))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	tests := []struct {
		name     string
		hosts    []string
		wantErr  error
		requests int32
	}{
		{name: "no binding", hosts: nil, wantErr: oauthcc.ErrTokenURLNotBound},
		{name: "another port", hosts: []string{u.Hostname() + ":1"}, wantErr: oauthcc.ErrTokenURLNotBound},
		{name: "another host", hosts: []string{"idp.example"}, wantErr: oauthcc.ErrTokenURLNotBound},
		{name: "bound", hosts: []string{u.Host}, requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requests.Store(0)
			s := oauthcc.NewSource(oauthcc.Config{TokenURL: srv.URL, ClientID: "gw", ClientSecret: "cs", Hosts: tt.hosts}, http.DefaultTransport)
			v, err := s.Authorization()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && v != "Bearer tok") {
				t.Fatalf("Authorization() = %q, %v; want %v", v, err, tt.wantErr)
			}
			if n := requests.Load(); n != tt.requests {
				t.Errorf("%d token requests, want %d", n, tt.requests)
			}
		})
	}
}
