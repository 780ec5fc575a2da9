package introspect_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/introspect"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
)

var services = []string{adminv1connect.AgentServiceName, auditv1connect.AuditServiceName}

func serve(t *testing.T, ready func() bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	if err := introspect.Mount(mux, introspect.Config{Services: services, Ready: ready}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true // reflection is a bidirectional stream
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestReflection(t *testing.T) {
	srv := serve(t, func() bool { return true })
	stream := grpcreflect.NewClient(srv.Client(), srv.URL, connect.WithGRPC()).NewStream(context.Background())
	t.Cleanup(func() { _, _ = stream.Close() })

	names, err := stream.ListServices()
	if err != nil {
		t.Fatalf("list services: %v", err)
	}
	got := make([]string, len(names))
	for i, n := range names {
		got[i] = string(n)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(services), "grpc.health.v1.Health")))
	if !slices.Equal(got, want) {
		t.Errorf("services %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name     string
		symbol   protoreflect.FullName
		wantFile string // "" for not found
	}{
		{name: "a listed service", symbol: adminv1connect.AgentServiceName, wantFile: "portcullis/admin/v1/agent.proto"},
		{name: "a method's request type", symbol: "portcullis.admin.v1.ListAgentsRequest", wantFile: "portcullis/admin/v1/agent.proto"},
		{name: "the health service", symbol: "grpc.health.v1.Health", wantFile: "grpc/health/v1/health.proto"},
		{name: "a well-known type the API imports", symbol: "google.protobuf.Timestamp", wantFile: "google/protobuf/timestamp.proto"},
		{name: "a service not listed", symbol: "portcullis.cluster.v1.PeerService"},
		{name: "a type linked in but not part of the API", symbol: "grpc.reflection.v1.ServerReflectionRequest"},
		{name: "no such symbol", symbol: "portcullis.admin.v1.NoSuchThing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := stream.FileContainingSymbol(tc.symbol)
			if tc.wantFile == "" {
				if connect.CodeOf(err) != connect.CodeNotFound {
					t.Fatalf("got %d files, error %v; want NotFound", len(fds), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(fds) == 0 || fds[0].GetName() != tc.wantFile {
				t.Fatalf("got files %v, want %s first", fileNames(fds), tc.wantFile)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	var ready atomic.Bool
	srv := serve(t, ready.Load)
	client := grpchealth.NewClient(srv.Client(), srv.URL, connect.WithGRPC())
	for _, tc := range []struct {
		name     string
		ready    bool
		service  string
		want     grpchealth.Status
		wantCode connect.Code
	}{
		{name: "node not ready", service: "", want: grpchealth.StatusNotServing},
		{name: "node ready", ready: true, service: "", want: grpchealth.StatusServing},
		{name: "a service of a ready node", ready: true, service: adminv1connect.AgentServiceName, want: grpchealth.StatusServing},
		{name: "a service of a node not ready", service: auditv1connect.AuditServiceName, want: grpchealth.StatusNotServing},
		{name: "an unknown service", ready: true, service: "portcullis.cluster.v1.PeerService", wantCode: connect.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(tc.ready)
			resp, err := client.Check(context.Background(), &grpchealth.CheckRequest{Service: tc.service})
			if tc.wantCode != 0 {
				if connect.CodeOf(err) != tc.wantCode {
					t.Fatalf("got %v, want code %v", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.want {
				t.Errorf("status %v, want %v", resp.Status, tc.want)
			}
		})
	}
}

func TestMountRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  introspect.Config
	}{
		{name: "an unknown service", cfg: introspect.Config{Services: []string{"portcullis.admin.v1.NoSuchService"}, Ready: func() bool { return true }}},
		{name: "a message, not a service", cfg: introspect.Config{Services: []string{"portcullis.admin.v1.ListAgentsRequest"}, Ready: func() bool { return true }}},
		{name: "no readiness", cfg: introspect.Config{Services: services}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := introspect.Mount(http.NewServeMux(), tc.cfg); err == nil {
				t.Fatal("mounted")
			}
		})
	}
}

func fileNames(fds []*descriptorpb.FileDescriptorProto) []string {
	out := make([]string, len(fds))
	for i, fd := range fds {
		out[i] = fd.GetName()
	}
	return out
}
