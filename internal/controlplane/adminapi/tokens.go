package adminapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxTokenTTL is the longest lifetime of a created token.
const MaxTokenTTL = 366 * 24 * time.Hour

// CreateToken implements TokenService.
func (a *API) CreateToken(ctx context.Context, req *connect.Request[adminv1.CreateTokenRequest]) (*connect.Response[adminv1.CreateTokenResponse], error) {
	m := req.Msg
	if _, ok := configv1.Role_name[int32(m.GetRole())]; !ok || m.GetRole() == configv1.Role_ROLE_UNSPECIFIED {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("role is required: admin, operator, auditor or dataplane"))
	}
	ttl := m.GetTtl().AsDuration()
	if m.GetTtl() == nil || ttl <= 0 || ttl > MaxTokenTTL {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("ttl is required, between 1s and %s", MaxTokenTTL))
	}
	minted, err := a.mint(ctx, credential.AdminToken, req.Header(), "TokenService.CreateToken")
	if err != nil {
		return nil, err
	}
	tok := &configv1.AdminToken{
		Meta:       &configv1.ResourceMeta{Name: minted.ID, Owner: m.GetOwner(), Description: m.GetDescription()},
		Role:       m.GetRole(),
		Sha256:     minted.SHA256,
		ExpireTime: timestamppb.New(a.cfg.Now().Add(ttl)),
	}
	r, err := a.put(ctx, req.Header(), "TokenService.CreateToken", resource.Wrap(tok), fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.CreateTokenResponse{Token: publicToken(r.GetAdminToken()), Secret: minted.Text}), nil
}

// ListTokens implements TokenService.
func (a *API) ListTokens(ctx context.Context, req *connect.Request[adminv1.ListTokensRequest]) (*connect.Response[adminv1.ListTokensResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.AdminToken, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListTokensResponse{NextPageToken: next}
	for _, r := range items {
		out.Tokens = append(out.Tokens, publicToken(r.GetAdminToken()))
	}
	return resp(out), nil
}

// RevokeToken implements TokenService.
func (a *API) RevokeToken(ctx context.Context, req *connect.Request[adminv1.RevokeTokenRequest]) (*connect.Response[adminv1.RevokeTokenResponse], error) {
	if err := a.remove(ctx, req.Header(), "TokenService.RevokeToken", resource.AdminToken, req.Msg.GetId(), 0); err != nil {
		return nil, err
	}
	return resp(&adminv1.RevokeTokenResponse{}), nil
}
