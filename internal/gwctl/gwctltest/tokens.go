package gwctltest

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

type tokens struct {
	adminv1connect.UnimplementedTokenServiceHandler
	state *State
}

func (h *tokens) CreateToken(_ context.Context, req *connect.Request[adminv1.CreateTokenRequest]) (*connect.Response[adminv1.CreateTokenResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTLs = append(s.tokenTTLs, req.Msg)
	id := fmt.Sprintf("tok%d", s.revision+2)
	tok := &configv1.AdminToken{
		Meta:       s.nextMeta(&configv1.ResourceMeta{Name: id, Description: req.Msg.GetDescription(), Owner: req.Msg.GetOwner()}, nil),
		Role:       req.Msg.GetRole(),
		ExpireTime: timestamppb.New(Now.Add(req.Msg.GetTtl().AsDuration())),
	}
	s.tokens[id] = tok
	return connect.NewResponse(&adminv1.CreateTokenResponse{Token: tok, Secret: "pct_" + id + "_n3wtokensecret"}), nil
}

func (h *tokens) ListTokens(_ context.Context, req *connect.Request[adminv1.ListTokensRequest]) (*connect.Response[adminv1.ListTokensResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	items, next, err := page(s, s.tokens, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListTokensResponse{Tokens: items, NextPageToken: next}), nil
}
