package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// node is one in-process control-plane node serving the admin API over
// plaintext HTTP on loopback, with the clients the tests call it through.
type node struct {
	srv  *server.Server
	base string
	hc   *http.Client
	// admin is the bootstrap admin token.
	admin string

	agents     adminv1connect.AgentServiceClient
	upstreams  adminv1connect.UpstreamServiceClient
	tools      adminv1connect.ToolServiceClient
	policies   adminv1connect.PolicyServiceClient
	identities adminv1connect.IdentitySourceServiceClient
	secrets    adminv1connect.SecretServiceClient
	tokens     adminv1connect.TokenServiceClient
	backups    adminv1connect.BackupServiceClient
	lists      adminv1connect.ValueListServiceClient
	rules      adminv1connect.InspectionServiceClient
}

// testLogger logs to t.Log until the test's cleanup ends, then drops
// records, so a late log line from a stopping goroutine cannot panic.
func testLogger(t *testing.T) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// startNode bootstraps a one-node cluster for t and stops it when t ends.
func startNode(t *testing.T) *node {
	t.Helper()
	n := cptest.Start(t, cptest.Options{Logger: testLogger(t)})
	hc, base := n.HTTPClient, n.URL
	return &node{
		srv: n.Server, base: base, hc: hc, admin: n.AdminToken,
		agents:     adminv1connect.NewAgentServiceClient(hc, base),
		upstreams:  adminv1connect.NewUpstreamServiceClient(hc, base),
		tools:      adminv1connect.NewToolServiceClient(hc, base),
		policies:   adminv1connect.NewPolicyServiceClient(hc, base),
		identities: adminv1connect.NewIdentitySourceServiceClient(hc, base),
		secrets:    adminv1connect.NewSecretServiceClient(hc, base),
		tokens:     adminv1connect.NewTokenServiceClient(hc, base),
		backups:    adminv1connect.NewBackupServiceClient(hc, base),
		lists:      adminv1connect.NewValueListServiceClient(hc, base),
		rules:      adminv1connect.NewInspectionServiceClient(hc, base),
	}
}

// req wraps msg in a request carrying token and the header pairs kv.
func req[T any](token string, msg *T, kv ...string) *connect.Request[T] {
	r := connect.NewRequest(msg)
	if token != "" {
		r.Header().Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header().Set(kv[i], kv[i+1])
	}
	return r
}

// ctx returns a context bounded for one test step.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// newToken creates a token of role through TokenService and returns the
// token text and its id.
func (n *node) newToken(t *testing.T, role configv1.Role, ttl time.Duration) (text, id string) {
	t.Helper()
	res, err := n.tokens.CreateToken(ctx(t), req(n.admin, &adminv1.CreateTokenRequest{Role: role, Ttl: durationpb.New(ttl), Description: "test " + role.String()}))
	if err != nil {
		t.Fatalf("create %v token: %v", role, err)
	}
	return res.Msg.GetSecret(), res.Msg.GetToken().GetMeta().GetName()
}

// wantCode fails t unless err is a Connect error with code and a message
// containing every fragment.
func wantCode(t *testing.T, err error, code connect.Code, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %v", code)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a Connect error", err)
	}
	t.Logf("%v: %s", ce.Code(), ce.Message())
	if ce.Code() != code {
		t.Fatalf("code = %v (%s), want %v", ce.Code(), ce.Message(), code)
	}
	for _, f := range fragments {
		if !strings.Contains(ce.Message(), f) {
			t.Errorf("message %q does not mention %q", ce.Message(), f)
		}
	}
}

// rawResponse is what a raw POST returned.
type rawResponse struct {
	status int
	body   []byte
	// code and message are set when the body is a Connect error.
	code, message string
}

// post sends body to a procedure with a content type, as a client other
// than the generated one would.
func (n *node) post(t *testing.T, procedure, contentType, token string, body []byte) rawResponse {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx(t), http.MethodPost, n.base+procedure, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("Connect-Protocol-Version", "1")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.hc.Do(r)
	if err != nil {
		t.Fatalf("POST %s: %v", procedure, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	out := rawResponse{status: resp.StatusCode, body: b}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Code, Message string }
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("error body %q is not a Connect error: %v", b, err)
		}
		out.code, out.message = e.Code, e.Message
	}
	return out
}

// postJSON is post with a JSON body that must succeed.
func (n *node) postJSON(t *testing.T, procedure, token, body string) []byte {
	t.Helper()
	r := n.post(t, procedure, "application/json", token, []byte(body))
	if r.status != http.StatusOK {
		t.Fatalf("POST %s: %d %s: %s", procedure, r.status, r.code, r.message)
	}
	return r.body
}
