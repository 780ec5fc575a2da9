package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1/configsyncv1connect"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// edgeNode is a one-node cluster with an admin token and a data plane's
// join credential, and clients that speak raw Connect and raw gRPC (h2c).
type edgeNode struct {
	*cptest.Node
	dataplane string
	h2c       *http.Client
}

func startEdgeNode(t *testing.T) *edgeNode {
	t.Helper()
	n := cptest.Start(t, cptest.Options{Logger: testLogger(t)})
	jc, err := adminv1connect.NewDataplaneServiceClient(n.HTTPClient, n.URL).CreateJoinCredential(context.Background(),
		req(n.AdminToken, &adminv1.CreateJoinCredentialRequest{Name: "dp1"}))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := joincred.Parse(jc.Msg.GetCredential())
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &edgeNode{Node: n, dataplane: cred.Token, h2c: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// reply is a refusal (or success: code "") as the client saw it.
type reply struct{ code, message string }

// postConnect sends a Connect unary request whose body is body, announced
// as gzip-compressed when gzipped is set.
func (n *edgeNode) postConnect(t *testing.T, procedure, token string, body []byte, gzipped bool) reply {
	t.Helper()
	r, err := http.NewRequestWithContext(context.Background(), http.MethodPost, n.URL+procedure, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/proto")
	r.Header.Set("Connect-Protocol-Version", "1")
	if gzipped {
		r.Header.Set("Content-Encoding", "gzip")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.HTTPClient.Do(r)
	if err != nil {
		t.Fatalf("POST %s: %v", procedure, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		return reply{}
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%d %q is not a Connect error: %v", resp.StatusCode, b, err)
	}
	return reply{e.Code, e.Message}
}

// postGRPC sends one gRPC message (already compressed when compressed is
// set) over HTTP/2 without TLS.
func (n *edgeNode) postGRPC(t *testing.T, procedure, token string, msg []byte, compressed bool) reply {
	t.Helper()
	env := make([]byte, 5, 5+len(msg))
	if compressed {
		env[0] = 1
	}
	binary.BigEndian.PutUint32(env[1:], uint32(len(msg))) //nolint:gosec // test messages are far below 4 GiB
	r, err := http.NewRequestWithContext(context.Background(), http.MethodPost, n.URL+procedure, bytes.NewReader(append(env, msg...)))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/grpc")
	r.Header.Set("Te", "trailers")
	if compressed {
		r.Header.Set("Grpc-Encoding", "gzip")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.h2c.Do(r)
	if err != nil {
		t.Fatalf("POST %s: %v", procedure, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	status, message := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if status == "" {
		status, message = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	code, err := strconv.Atoi(status)
	if err != nil {
		t.Fatalf("POST %s: grpc-status %q", procedure, status)
	}
	if code == 0 {
		return reply{}
	}
	if m, err := url.PathUnescape(message); err == nil {
		message = m
	}
	return reply{connect.Code(code).String(), message} //nolint:gosec // gRPC codes are small
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadLimitsPerProcedure: each procedure takes requests up to its own
// limit and refuses larger ones with ResourceExhausted.
func TestReadLimitsPerProcedure(t *testing.T) {
	n := startEdgeNode(t)
	big := func(size int) string { return strings.Repeat("x", size) }
	tests := []struct {
		name      string
		procedure string
		token     string
		msg       proto.Message
		// exhausted: refused for its size; otherwise any other outcome.
		exhausted bool
	}{
		{name: "get: a 60 KiB name", procedure: adminv1connect.AgentServiceGetAgentProcedure, msg: &adminv1.GetAgentRequest{Name: big(60 << 10)}},
		{name: "get: a 65 KiB name", procedure: adminv1connect.AgentServiceGetAgentProcedure, msg: &adminv1.GetAgentRequest{Name: big(65 << 10)}, exhausted: true},
		{name: "create agent: a 200 KiB description", procedure: adminv1connect.AgentServiceCreateAgentProcedure,
			msg: &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "a", Description: big(200 << 10)}}}},
		{name: "create agent: a 300 KiB description", procedure: adminv1connect.AgentServiceCreateAgentProcedure,
			msg: &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "a", Description: big(300 << 10)}}}, exhausted: true},
		{name: "apply policy: a 1 MiB source", procedure: adminv1connect.PolicyServiceApplyPolicySetProcedure,
			msg: &adminv1.ApplyPolicySetRequest{Name: "p", Source: big(1 << 20)}},
		{name: "apply policy: a 5 MiB source", procedure: adminv1connect.PolicyServiceApplyPolicySetProcedure,
			msg: &adminv1.ApplyPolicySetRequest{Name: "p", Source: big(5 << 20)}, exhausted: true},
		{name: "audit upload: 4 MiB", procedure: auditv1connect.AuditServiceUploadProcedure, token: n.dataplane,
			msg: &auditv1.UploadRequest{Records: []*auditv1.Record{{Dataplane: "dp1", Agent: big(4 << 20)}}}},
		{name: "audit upload: 5 MiB", procedure: auditv1connect.AuditServiceUploadProcedure, token: n.dataplane,
			msg: &auditv1.UploadRequest{Records: []*auditv1.Record{{Dataplane: "dp1", Agent: big(5 << 20)}}}, exhausted: true},
		{name: "config sync report: 8 KiB reason", procedure: configsyncv1connect.ConfigSyncServiceReportProcedure, token: n.dataplane,
			msg: &configsyncv1.ReportRequest{Name: "dp1", Reason: big(8 << 10)}},
		{name: "config sync report: 2 MiB reason", procedure: configsyncv1connect.ConfigSyncServiceReportProcedure, token: n.dataplane,
			msg: &configsyncv1.ReportRequest{Name: "dp1", Reason: big(2 << 20)}, exhausted: true},
	}
	for _, tt := range tests {
		token := tt.token
		if token == "" {
			token = n.AdminToken
		}
		body := marshal(t, tt.msg)
		for _, protocol := range []string{"connect", "grpc"} {
			t.Run(tt.name+"/"+protocol, func(t *testing.T) {
				var got reply
				if protocol == "connect" {
					got = n.postConnect(t, tt.procedure, token, body, false)
				} else {
					got = n.postGRPC(t, tt.procedure, token, body, false)
				}
				t.Logf("%d bytes: %s %.200q", len(body), got.code, got.message)
				if exhausted := got.code == connect.CodeResourceExhausted.String(); exhausted != tt.exhausted {
					t.Errorf("refused as too large: %v, want %v (%s: %s)", exhausted, tt.exhausted, got.code, got.message)
				}
			})
		}
	}
}

// gzipBomb compresses a message whose field 1 (bytes) holds size zero
// bytes: about size/1000 bytes on the wire. It is a series of gzip members
// (valid gzip: readers concatenate them), the zeros compressed 1 MiB at a
// time once, so building it costs next to nothing.
func gzipBomb(t *testing.T, size int) []byte {
	t.Helper()
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	const mib = 1 << 20
	out := gz(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), uint64(size))) //nolint:gosec // size is positive
	out = append(out, bytes.Repeat(gz(make([]byte, mib)), size/mib)...)
	if size%mib != 0 {
		out = append(out, gz(make([]byte, size%mib))...)
	}
	return out
}

// allocatedDuring is how many bytes this process (client and node alike)
// allocated while fn ran.
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestGzipBombs: a compressed request that would inflate far beyond what
// its procedure takes is refused after a bounded amount of work, whoever
// sends it; without a token it is refused before it is even read.
func TestGzipBombs(t *testing.T) {
	n := startEdgeNode(t)
	restoreBomb := gzipBomb(t, 250<<20) // under RestoreBackup's 256 MiB limit once inflated
	agentBomb := gzipBomb(t, 64<<20)
	tests := []struct {
		name      string
		procedure string
		token     string
		body      []byte
		code      connect.Code
		message   string
		// maxAlloc bounds what the whole test process allocates for the
		// call; inflating the bomb would take at least its size.
		maxAlloc uint64
	}{
		{name: "restore without a token", procedure: adminv1connect.BackupServiceRestoreBackupProcedure, body: restoreBomb,
			code: connect.CodeUnauthenticated, message: "token was refused", maxAlloc: 16 << 20},
		{name: "restore by an operator", procedure: adminv1connect.BackupServiceRestoreBackupProcedure, token: "operator", body: restoreBomb,
			code: connect.CodePermissionDenied, message: "lacks role admin", maxAlloc: 16 << 20},
		{name: "restore by an admin", procedure: adminv1connect.BackupServiceRestoreBackupProcedure, token: n.AdminToken, body: restoreBomb,
			code: connect.CodeResourceExhausted, message: "decompresses to more than 100 times its compressed size", maxAlloc: 32 << 20},
		{name: "create agent by an admin", procedure: adminv1connect.AgentServiceCreateAgentProcedure, token: n.AdminToken, body: agentBomb,
			code: connect.CodeResourceExhausted, message: "larger than 262144 bytes once decompressed", maxAlloc: 16 << 20},
		{name: "audit upload by a data plane", procedure: auditv1connect.AuditServiceUploadProcedure, token: n.dataplane, body: agentBomb,
			code: connect.CodeResourceExhausted, message: "decompresses to more than 100 times", maxAlloc: 16 << 20},
		{name: "config sync report by a data plane", procedure: configsyncv1connect.ConfigSyncServiceReportProcedure, token: n.dataplane, body: agentBomb,
			code: connect.CodeUnimplemented, message: "gzip", maxAlloc: 16 << 20},
	}
	operator := ""
	{
		res, err := adminv1connect.NewTokenServiceClient(n.HTTPClient, n.URL).CreateToken(context.Background(),
			req(n.AdminToken, &adminv1.CreateTokenRequest{Role: configv1.Role_ROLE_OPERATOR, Ttl: durationpb.New(time.Hour)}))
		if err != nil {
			t.Fatal(err)
		}
		operator = res.Msg.GetSecret()
	}
	for _, tt := range tests {
		if tt.token == "operator" {
			tt.token = operator
		}
		for _, protocol := range []string{"connect", "grpc"} {
			t.Run(tt.name+"/"+protocol, func(t *testing.T) {
				var got reply
				alloc := allocatedDuring(func() {
					if protocol == "connect" {
						got = n.postConnect(t, tt.procedure, tt.token, tt.body, true)
					} else {
						got = n.postGRPC(t, tt.procedure, tt.token, tt.body, true)
					}
				})
				t.Logf("%d compressed bytes: %s %q; %d KiB allocated", len(tt.body), got.code, got.message, alloc>>10)
				if got.code != tt.code.String() || !strings.Contains(got.message, tt.message) {
					t.Errorf("refused with %s %q, want %s and %q", got.code, got.message, tt.code, tt.message)
				}
				if alloc > tt.maxAlloc {
					t.Errorf("allocated %d KiB, want at most %d KiB", alloc>>10, tt.maxAlloc>>10)
				}
			})
		}
	}
}

// TestCompressedRequestsStillServed: an honest compressed request is
// served as before, over Connect and gRPC.
func TestCompressedRequestsStillServed(t *testing.T) {
	n := startEdgeNode(t)
	var src strings.Builder
	src.WriteString(`permit(principal, action in Action::"call_tool", resource);` + "\n")
	for i := range 2000 {
		fmt.Fprintf(&src, "// rule %d: agents of team payments may call the billing tools during business hours\n", i)
	}
	clients := map[string]adminv1connect.PolicyServiceClient{
		"connect": adminv1connect.NewPolicyServiceClient(n.HTTPClient, n.URL, connect.WithSendGzip()),
		"grpc":    adminv1connect.NewPolicyServiceClient(n.h2c, n.URL, connect.WithGRPC(), connect.WithSendGzip()),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			res, err := c.ApplyPolicySet(context.Background(), req(n.AdminToken, &adminv1.ApplyPolicySetRequest{Name: "gz-" + name, Source: src.String(), DryRun: true}))
			if err != nil {
				t.Fatalf("a %d-byte policy sent compressed: %v", src.Len(), err)
			}
			if len(res.Msg.GetPolicySet().GetPolicyIds()) != 1 {
				t.Fatalf("policy ids %v, want one", res.Msg.GetPolicySet().GetPolicyIds())
			}
		})
	}
}
