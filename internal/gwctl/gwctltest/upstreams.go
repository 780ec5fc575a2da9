package gwctltest

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

type upstreams struct {
	adminv1connect.UnimplementedUpstreamServiceHandler
	state *State
}

func (h *upstreams) CreateUpstream(_ context.Context, req *connect.Request[adminv1.CreateUpstreamRequest]) (*connect.Response[adminv1.CreateUpstreamResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	up := proto.Clone(req.Msg.GetUpstream()).(*configv1.Upstream)
	name := up.GetMeta().GetName()
	if _, ok := s.upstreams[name]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("upstream %q already exists", name))
	}
	up.Meta = s.nextMeta(up.GetMeta(), nil)
	s.upstreams[name] = up
	return connect.NewResponse(&adminv1.CreateUpstreamResponse{Upstream: up}), nil
}
