package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestAdminAPIThroughReflection uses the admin API the way grpcurl does,
// with grpc-go and no compiled-in knowledge of Portcullis's protos: it
// lists the services over gRPC server reflection, fetches the descriptors
// of AgentService and the files they import, builds request messages from
// those descriptors alone (JSON in, as `grpcurl -d` takes it), creates an
// agent and lists it back with the admin token, is refused without one,
// and checks the node's health with the gRPC health service.
func TestAdminAPIThroughReflection(t *testing.T) {
	c := harness.StartCluster(t, 1)
	creds, err := credentials.NewClientTLSFromFile(c.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.Nodes[0].APIAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Health, as a load balancer or a Kubernetes gRPC probe checks it.
	health := healthpb.NewHealthClient(conn)
	for _, service := range []string{"", "portcullis.admin.v1.AgentService"} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v, want SERVING", service, resp.GetStatus(), err)
		}
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "portcullis.cluster.v1.PeerService"}); status.Code(err) != codes.NotFound {
		t.Errorf("health of the node-to-node service: %v, want NotFound", err)
	}

	// Reflection: the services, then the files of one, as grpcurl's
	// "list" and "describe" do.
	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := refl.Send(req); err != nil {
			t.Fatalf("reflection: send: %v", err)
		}
		resp, err := refl.Recv()
		if err != nil {
			t.Fatalf("reflection: receive: %v", err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("reflection: %d %s", e.GetErrorCode(), e.GetErrorMessage())
		}
		return resp
	}
	var services []string
	for _, s := range ask(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}).GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"grpc.health.v1.Health", "portcullis.admin.v1.AgentService", "portcullis.admin.v1.PolicyService", "portcullis.audit.v1.AuditService", "portcullis.configsync.v1.ConfigSyncService"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %q, missing %s", services, want)
		}
	}
	if slices.Contains(services, "portcullis.cluster.v1.PeerService") {
		t.Errorf("reflection lists the node-to-node service: %q", services)
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, b := range ask(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "portcullis.admin.v1.AgentService"},
	}).GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fd); err != nil {
			t.Fatalf("reflection sent a file that does not decode: %v", err)
		}
		set.File = append(set.File, fd)
	}
	_ = refl.CloseSend()
	// Every file the service needs came with it: they resolve alone.
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("the files reflection sent do not resolve on their own: %v", err)
	}
	d, err := files.FindDescriptorByName("portcullis.admin.v1.AgentService")
	if err != nil {
		t.Fatal(err)
	}
	svc := d.(protoreflect.ServiceDescriptor)

	// invoke calls a method of AgentService with a request given as JSON
	// and returns the response as JSON.
	invoke := func(ctx context.Context, method, request string) (string, error) {
		m := svc.Methods().ByName(protoreflect.Name(method))
		if m == nil {
			t.Fatalf("reflection describes no method %s", method)
		}
		in, out := dynamicpb.NewMessage(m.Input()), dynamicpb.NewMessage(m.Output())
		if err := protojson.Unmarshal([]byte(request), in); err != nil {
			t.Fatalf("%s request %s: %v", method, request, err)
		}
		if err := conn.Invoke(ctx, fmt.Sprintf("/%s/%s", svc.FullName(), m.Name()), in, out); err != nil {
			return "", err
		}
		b, err := protojson.Marshal(out)
		return string(b), err
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.Token)
	created, err := invoke(authed, "CreateAgent", `{"agent": {"meta": {"name": "reflected-agent"}, "team": "ops"}}`)
	if err != nil {
		t.Fatalf("CreateAgent through reflection: %v", err)
	}
	if !strings.Contains(created, `"apiKey":"pck_`) {
		t.Errorf("CreateAgent answered %s, want the new agent's API key", created)
	}
	listed, err := invoke(authed, "ListAgents", `{}`)
	if err != nil {
		t.Fatalf("ListAgents through reflection: %v", err)
	}
	if !strings.Contains(listed, `"reflected-agent"`) {
		t.Errorf("ListAgents answered %s, want reflected-agent in it", listed)
	}
	if _, err := invoke(ctx, "ListAgents", `{}`); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListAgents without a token: %v, want Unauthenticated", err)
	}
}
