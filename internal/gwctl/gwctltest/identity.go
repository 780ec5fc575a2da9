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

type identities struct {
	adminv1connect.UnimplementedIdentitySourceServiceHandler
	state *State
}

func (h *identities) CreateIdentitySource(_ context.Context, req *connect.Request[adminv1.CreateIdentitySourceRequest]) (*connect.Response[adminv1.CreateIdentitySourceResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	src := proto.Clone(req.Msg.GetIdentitySource()).(*configv1.IdentitySource)
	name := src.GetMeta().GetName()
	if _, ok := s.identities[name]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("identity source %q already exists", name))
	}
	src.Meta = s.nextMeta(src.GetMeta(), nil)
	s.identities[name] = src
	return connect.NewResponse(&adminv1.CreateIdentitySourceResponse{IdentitySource: src}), nil
}

func (h *identities) GetIdentitySource(_ context.Context, req *connect.Request[adminv1.GetIdentitySourceRequest]) (*connect.Response[adminv1.GetIdentitySourceResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.identities[req.Msg.GetName()]
	if !ok {
		return nil, notFound("identity source", req.Msg.GetName())
	}
	return connect.NewResponse(&adminv1.GetIdentitySourceResponse{IdentitySource: src}), nil
}

func (h *identities) ListIdentitySources(_ context.Context, req *connect.Request[adminv1.ListIdentitySourcesRequest]) (*connect.Response[adminv1.ListIdentitySourcesResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	items, next, err := page(s, s.identities, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListIdentitySourcesResponse{IdentitySources: items, NextPageToken: next}), nil
}
