package server_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	_ "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	_ "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// recordingBody is an endless request body that remembers whether anyone
// read from it.
type recordingBody struct{ read atomic.Bool }

func (b *recordingBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	clear(p)
	return len(p), nil
}

func (b *recordingBody) Close() error { return nil }

// procedure is one RPC the node serves to clients.
type procedure struct {
	path      string
	streaming bool
}

// clientProcedures lists every procedure of the packages a node serves to
// clients (admin API, audit service, config sync), from the descriptors:
// a procedure added later is covered without touching this test.
func clientProcedures(t *testing.T) []procedure {
	t.Helper()
	var out []procedure
	for _, pkg := range []protoreflect.FullName{"portcullis.admin.v1", "portcullis.audit.v1", "portcullis.configsync.v1"} {
		protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(f protoreflect.FileDescriptor) bool {
			for i := range f.Services().Len() {
				svc := f.Services().Get(i)
				for j := range svc.Methods().Len() {
					m := svc.Methods().Get(j)
					out = append(out, procedure{path: "/" + string(svc.FullName()) + "/" + string(m.Name()), streaming: m.IsStreamingServer()})
				}
			}
			return true
		})
	}
	if len(out) < 60 {
		t.Fatalf("found only %d procedures; are the generated packages linked in?", len(out))
	}
	return out
}

// outcome is the Connect code a refusal carried, in whatever shape the
// protocol uses, and whether the body was touched.
type outcome struct {
	code     string
	httpCode int
	read     bool
}

// call sends a request with an endless body straight to the node's handler
// (no connection, so nothing but the server reads the body).
func call(t *testing.T, h http.Handler, p procedure, contentType, authorization string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, p.path, nil)
	body := &recordingBody{}
	r.Body = body
	r.ContentLength = -1
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("Connect-Protocol-Version", "1")
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	out := outcome{httpCode: res.StatusCode, read: body.read.Load()}
	switch {
	case strings.HasPrefix(contentType, "application/grpc"):
		status := res.Trailer.Get("Grpc-Status")
		if status == "" {
			status = res.Header.Get("Grpc-Status")
		}
		out.code = map[string]string{"16": "unauthenticated", "7": "permission_denied"}[status]
		if out.code == "" {
			out.code = "grpc-status " + status
		}
	case strings.HasPrefix(contentType, "application/connect+"):
		b := rec.Body.Bytes()
		if len(b) < 5 || b[0]&2 == 0 || int(binary.BigEndian.Uint32(b[1:5])) != len(b)-5 {
			t.Fatalf("%s: %q is not one end-stream message", p.path, b)
		}
		var end struct{ Error struct{ Code string } }
		if err := json.Unmarshal(b[5:], &end); err != nil {
			t.Fatalf("%s: end-stream message %q: %v", p.path, b[5:], err)
		}
		out.code = end.Error.Code
	default:
		var e struct{ Code string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s: %d %q is not a Connect error: %v", p.path, res.StatusCode, rec.Body.Bytes(), err)
		}
		out.code = e.Code
	}
	return out
}

// TestEveryProcedureIsGatedBeforeItsBody: whatever the procedure and the
// protocol, a caller without a valid token, or with one whose role does
// not allow the procedure, is refused in the protocol's own error shape
// before a single byte of the body is read.
func TestEveryProcedureIsGatedBeforeItsBody(t *testing.T) {
	n := cptest.Start(t, cptest.Options{Logger: testLogger(t)})
	h := n.Server.Handler()
	hc, url := n.HTTPClient, n.URL
	tokens := adminv1connect.NewTokenServiceClient(hc, url)
	newToken := func(role configv1.Role) string {
		res, err := tokens.CreateToken(context.Background(), req(n.AdminToken, &adminv1.CreateTokenRequest{Role: role, Ttl: durationpb.New(time.Hour)}))
		if err != nil {
			t.Fatalf("create %v token: %v", role, err)
		}
		return res.Msg.GetSecret()
	}
	jc, err := adminv1connect.NewDataplaneServiceClient(hc, url).CreateJoinCredential(context.Background(),
		req(n.AdminToken, &adminv1.CreateJoinCredentialRequest{Name: "dp1"}))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := joincred.Parse(jc.Msg.GetCredential())
	if err != nil {
		t.Fatal(err)
	}
	byRole := map[configv1.Role]string{
		configv1.Role_ROLE_ADMIN:     n.AdminToken,
		configv1.Role_ROLE_OPERATOR:  newToken(configv1.Role_ROLE_OPERATOR),
		configv1.Role_ROLE_AUDITOR:   newToken(configv1.Role_ROLE_AUDITOR),
		configv1.Role_ROLE_DATAPLANE: cred.Token,
	}
	// tooSmall is a token each least role refuses.
	tooSmall := map[configv1.Role]configv1.Role{
		configv1.Role_ROLE_ADMIN:     configv1.Role_ROLE_OPERATOR,
		configv1.Role_ROLE_OPERATOR:  configv1.Role_ROLE_AUDITOR,
		configv1.Role_ROLE_AUDITOR:   configv1.Role_ROLE_DATAPLANE,
		configv1.Role_ROLE_DATAPLANE: configv1.Role_ROLE_ADMIN,
	}
	unknown, err := credential.New(credential.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	rules := adminapi.Procedures()
	for _, p := range clientProcedures(t) {
		need, ok := rules[p.path]
		switch {
		case ok:
		case strings.HasPrefix(p.path, "/portcullis.configsync.v1."):
			need.Role = configv1.Role_ROLE_DATAPLANE
		default:
			t.Errorf("%s has no rule: it would not be served", p.path)
			continue
		}
		connectType := "application/proto"
		if p.streaming {
			connectType = "application/connect+proto"
		}
		credentials := []struct {
			name, authorization, code string
			status                    int
		}{
			{"no token", "", "unauthenticated", http.StatusUnauthorized},
			{"not a token", "Bearer not-a-token", "unauthenticated", http.StatusUnauthorized},
			{"unknown token", "Bearer " + unknown.Text, "unauthenticated", http.StatusUnauthorized},
			{"role too small", "Bearer " + byRole[tooSmall[need.Role]], "permission_denied", http.StatusForbidden},
		}
		for _, cr := range credentials {
			for _, ct := range []string{connectType, "application/grpc", "application/grpc-web+proto"} {
				t.Run(strings.TrimPrefix(p.path, "/portcullis.")+"/"+cr.name+"/"+ct, func(t *testing.T) {
					got := call(t, h, p, ct, cr.authorization)
					if got.read {
						t.Errorf("the body was read")
					}
					if got.code != cr.code {
						t.Errorf("refused with %q, want %q", got.code, cr.code)
					}
					if ct == "application/proto" && got.httpCode != cr.status {
						t.Errorf("HTTP status %d, want %d", got.httpCode, cr.status)
					}
				})
			}
		}
	}
}
