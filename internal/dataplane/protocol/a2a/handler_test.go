package a2a_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	a2agw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/a2a"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/test/a2aagent/agent"
)

// TestEdge: what the endpoint answers before, or instead of, a call.
func TestEdge(t *testing.T) {
	w := startWorld(t)
	const get = `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}`
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		header  map[string]string
		key     string
		status  int
		contain []string
	}{
		{name: "no credential", method: "POST", path: "/a2a/travel", body: get, status: 401, contain: []string{"-31401", "UNAUTHENTICATED"}},
		{name: "unknown credential", method: "POST", path: "/a2a/travel", body: get, key: "pck_0000000000000000_nope", status: 401},
		{name: "card without credential", method: "GET", path: "/a2a/travel/.well-known/agent-card.json", status: 401},
		{name: "two credentials", method: "POST", path: "/a2a/travel", body: get, key: configtest.PayerKey, header: map[string]string{"+Authorization": "Bearer other"}, status: 400, contain: []string{"more than once"}},
		{name: "not JSON", method: "POST", path: "/a2a/travel", body: get, key: configtest.PayerKey, header: map[string]string{"Content-Type": "text/plain"}, status: 415},
		{name: "GET the endpoint", method: "GET", path: "/a2a/travel", key: configtest.PayerKey, status: 405},
		{name: "unknown path", method: "GET", path: "/a2a/travel/other", key: configtest.PayerKey, status: 404},
		{name: "no agent", method: "GET", path: "/a2a/", key: configtest.PayerKey, status: 404},
		{name: "bad JSON", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":`, key: configtest.PayerKey, status: 400, contain: []string{"-32700"}},
		{name: "notification", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":"2.0","method":"GetTask"}`, key: configtest.PayerKey, status: 400, contain: []string{"-32600"}},
		{name: "unsupported version", method: "POST", path: "/a2a/travel", body: get, key: configtest.PayerKey, header: map[string]string{"A2A-Version": "2.0"}, status: 200, contain: []string{"-32009"}},
		{name: "a 0.3 method in 1.0", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"x"}}`, key: configtest.PayerKey, status: 200, contain: []string{"-32601"}},
		{name: "a 1.0 request without a version to a 1.0 agent", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"x"}}`, key: configtest.PayerKey, header: map[string]string{"A2A-Version": ""}, status: 200, contain: []string{"-32009", "speaks A2A 1.0"}},
		{name: "push config", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":"2.0","id":1,"method":"ListTaskPushNotificationConfigs","params":{"id":"x"}}`, key: configtest.PayerKey, status: 200, contain: []string{"-32003"}},
		{name: "push config in a send", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"x"}]},"configuration":{"taskPushNotificationConfig":{"url":"https://hook.example"}}}}`, key: configtest.PayerKey, status: 200, contain: []string{"-32003"}},
		{name: "no task id", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{}}`, key: configtest.PayerKey, status: 200, contain: []string{"-32602"}},
		{name: "unknown agent", method: "POST", path: "/a2a/nope", body: get, key: configtest.PayerKey, status: 404, contain: []string{"no remote agent nope"}},
		{name: "unknown agent's card", method: "GET", path: "/a2a/nope/.well-known/agent-card.json", key: configtest.PayerKey, status: 404},
		{name: "forwarding loop", method: "POST", path: "/a2a/travel", body: get, key: configtest.PayerKey, header: map[string]string{"Portcullis-Hop": "dp-test"}, status: 508},
		{name: "body too large", method: "POST", path: "/a2a/travel", body: `{"x":"` + strings.Repeat("a", 1<<20) + `"}`, key: configtest.PayerKey, status: 413},
		// A streaming method's refusal is an event: the SDKs read its
		// answer as a stream.
		{name: "denied stream", method: "POST", path: "/a2a/travel", body: `{"jsonrpc":"2.0","id":"s","method":"SendStreamingMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"x"}]}}}`,
			key: configtest.MarketerKey, status: 200, contain: []string{"data: {", `"id":"s"`, "-31403", "DENIED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, w.gw.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("A2A-Version", "1.0")
			if tt.key != "" {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			for k, v := range tt.header {
				if add, ok := strings.CutPrefix(k, "+"); ok {
					req.Header.Add(add, v)
				} else {
					req.Header.Set(k, v)
				}
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", res.StatusCode, tt.status, b)
			}
			for _, want := range tt.contain {
				if !strings.Contains(string(b), want) {
					t.Errorf("answer %s does not contain %q", b, want)
				}
			}
			if tt.status == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a challenge: %q", res.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// The pool fetches an agent's card (for drift detection) at the card path
// the upstream is registered with, on the origin of its URL.
func TestPoolListsTheCardAtItsPath(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.Handle("/", agent.New(srv.URL, agent.Options{Token: agentToken, CardPath: "/cards/travel.json"}).Handler())
	r := upstreamtest.NewResolver()
	u := &configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "travel"}, Protocol: configv1.Protocol_PROTOCOL_A2A, Url: srv.URL + agent.RPCPath,
		Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: "t"}}}}
	r.SetUpstream(u)
	r.SetSecret("t", []byte(agentToken), "127.0.0.1")
	pool := a2agw.NewPool(testLogger(t))
	defer func() { _ = pool.Close() }()
	if _, err := pool.ListTools(t.Context(), r, "travel"); err == nil {
		t.Fatal("listed a card at the well-known path, where there is none")
	}
	u.A2ACardPath = "/cards/travel.json"
	r.SetUpstream(u)
	defs, err := pool.ListTools(t.Context(), r, "travel")
	if err != nil || len(defs) != 1 || !strings.Contains(string(defs[0]), "Travel Agent") {
		t.Fatalf("ListTools = %s, %v", defs, err)
	}
}
