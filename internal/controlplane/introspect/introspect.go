// Package introspect makes a control-plane node's APIs discoverable by
// standard gRPC tools: gRPC server reflection (v1, and v1alpha for older
// tools), so grpcurl and `buf curl` list the services and call them
// without the proto files, and the gRPC health service, so load balancers
// and Kubernetes' gRPC probes check the node the way they check any gRPC
// server. Both use the Connect project's grpcreflect and grpchealth and
// answer over gRPC, gRPC-Web and Connect like every other API of the
// node.
//
// Neither needs a token: reflection describes only the services it is
// given (their proto files and the files those import, which are public
// in the repository), never every type linked into the binary, and health
// says no more than /readyz. Calling a described method still needs the
// token and role it always needed.
package introspect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	// The authoritative grpc.health.v1 descriptor, for reflection to
	// describe the health service (grpchealth registers its copy under
	// another package name).
	_ "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// maxRequestBytes bounds a reflection or health request (they name a
// symbol, a file or a service: a few hundred bytes).
const maxRequestBytes = 64 << 10

// Mux is where the handlers are mounted (an *http.ServeMux).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Config says what the node serves.
type Config struct {
	// Services are the fully-qualified names of the services reflection
	// lists and health answers for ("portcullis.admin.v1.AgentService").
	// Each must be in the global protobuf registry (generated code
	// registers itself there).
	Services []string
	// Ready reports whether the node serves (as /readyz does): SERVING,
	// else NOT_SERVING, for the node ("") and every service. Safe for
	// concurrent use.
	Ready func() bool
}

// Mount mounts gRPC reflection v1 and v1alpha and the gRPC health service
// on mux. It fails when a service is not in the global registry.
func Mount(mux Mux, cfg Config) error {
	if cfg.Ready == nil {
		return errors.New("introspect: Ready is required")
	}
	// Reflection lists the health service too, so that tools can call it
	// by name without its proto file (grpcurl … grpc.health.v1.Health/Check).
	names := append(slices.Clone(cfg.Services), grpchealth.HealthV1ServiceName)
	slices.Sort(names)
	files, err := closure(protoregistry.GlobalFiles, names)
	if err != nil {
		return err
	}
	// The API's protos declare no extensions: an empty set keeps those
	// of other packages linked into the binary out of reach too.
	reflector := grpcreflect.NewReflector(grpcreflect.NamerFunc(func() []string { return names }),
		grpcreflect.WithDescriptorResolver(files), grpcreflect.WithExtensionResolver(new(protoregistry.Types)))
	opts := []connect.HandlerOption{connect.WithReadMaxBytes(maxRequestBytes)}
	mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	mux.Handle(grpchealth.NewHandler(checker{services: names, ready: cfg.Ready}, opts...))
	return nil
}

// checker answers health checks from the node's readiness.
type checker struct {
	services []string // sorted
	ready    func() bool
}

var _ grpchealth.Checker = checker{}

// Check implements grpchealth.Checker.
func (c checker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" {
		if _, ok := slices.BinarySearch(c.services, req.Service); !ok {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("this node serves no service %q", req.Service))
		}
	}
	if c.ready() {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
}

// files is a descriptor resolver limited to a set of files: reflection
// answers for them and nothing else linked into the binary.
type files struct {
	reg  *protoregistry.Files
	keep map[string]bool // file paths
}

// closure is the resolver of the files that declare services and every
// file they import, transitively.
func closure(reg *protoregistry.Files, services []string) (*files, error) {
	f := &files{reg: reg, keep: map[string]bool{}}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if f.keep[fd.Path()] {
			return
		}
		f.keep[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
	}
	for _, s := range services {
		d, err := reg.FindDescriptorByName(protoreflect.FullName(s))
		if err != nil {
			return nil, fmt.Errorf("introspect: service %q: %w", s, err)
		}
		if _, ok := d.(protoreflect.ServiceDescriptor); !ok {
			return nil, fmt.Errorf("introspect: %q is not a service", s)
		}
		add(d.ParentFile())
	}
	return f, nil
}

// FindFileByPath implements protodesc.Resolver.
func (f *files) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if !f.keep[path] {
		return nil, protoregistry.NotFound
	}
	return f.reg.FindFileByPath(path)
}

// FindDescriptorByName implements protodesc.Resolver.
func (f *files) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	d, err := f.reg.FindDescriptorByName(name)
	if err != nil {
		return nil, err
	}
	if !f.keep[d.ParentFile().Path()] {
		return nil, protoregistry.NotFound
	}
	return d, nil
}
