package upstream

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

type recordingTransport struct{ got []*http.Request }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = append(r.got, req)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// TestCredentialTransportChecksEachRequest: whatever builds a request
// (a redirect, a client that changes its URL), the credential is attached
// only to a request for a bound host; any other is refused before it is
// sent.
func TestCredentialTransportChecksEachRequest(t *testing.T) {
	base := &recordingTransport{}
	ct := &credentialTransport{base: base, header: "Authorization", value: "Bearer tok-123",
		hosts: []string{"127.0.0.1:7450"}, maxRequest: 1 << 20, maxResponse: 1 << 20}
	for _, u := range []string{"http://127.0.0.1:7451/mcp", "http://evil.example/mcp", "http://localhost:7450/mcp"} {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("{}"))
		if _, err := ct.RoundTrip(req); !errors.Is(err, secretbind.ErrNotBound) {
			t.Errorf("%s: err = %v, want ErrNotBound", u, err)
		}
	}
	if len(base.got) != 0 {
		t.Fatalf("%d requests reached the network", len(base.got))
	}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:7450/mcp", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer agents-own")
	resp, err := ct.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if len(base.got) != 1 || base.got[0].Header.Get("Authorization") != "Bearer tok-123" {
		t.Fatalf("bound request: %d sent, Authorization %q", len(base.got), base.got[0].Header.Get("Authorization"))
	}
	if got := req.Header.Get("Authorization"); got != "Bearer agents-own" {
		t.Errorf("the caller's request was changed: Authorization %q", got)
	}
	// Once a bound host was allowed, other hosts are still refused.
	for _, u := range []string{"http://127.0.0.1:7451/mcp", "http://evil.example/mcp"} {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("{}"))
		if _, err := ct.RoundTrip(req); !errors.Is(err, secretbind.ErrNotBound) {
			t.Errorf("%s after a bound request: err = %v, want ErrNotBound", u, err)
		}
	}
	if len(base.got) != 1 {
		t.Fatalf("%d requests reached the network, want 1", len(base.got))
	}
}
