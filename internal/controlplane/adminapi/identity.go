package adminapi

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

func (a *API) identityInput(ctx context.Context, in *configv1.IdentitySource) (*configv1.IdentitySource, error) {
	if in == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("identity_source is required"))
	}
	s := proto.Clone(in).(*configv1.IdentitySource)
	s.Meta = inputMeta(in.GetMeta())
	if err := resource.Validate(resource.Wrap(s)); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if u := s.GetJwtIssuer().GetJwksUrl(); u != "" {
		if err := a.checkEgress(ctx, "jwt_issuer.jwks_url", u, false); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CreateIdentitySource implements IdentitySourceService.
func (a *API) CreateIdentitySource(ctx context.Context, req *connect.Request[adminv1.CreateIdentitySourceRequest]) (*connect.Response[adminv1.CreateIdentitySourceResponse], error) {
	s, err := a.identityInput(ctx, req.Msg.GetIdentitySource())
	if err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "IdentitySourceService.CreateIdentitySource", resource.Wrap(s), fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.CreateIdentitySourceResponse{IdentitySource: r.GetIdentitySource()}), nil
}

// GetIdentitySource implements IdentitySourceService.
func (a *API) GetIdentitySource(ctx context.Context, req *connect.Request[adminv1.GetIdentitySourceRequest]) (*connect.Response[adminv1.GetIdentitySourceResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.IdentitySource, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetIdentitySourceResponse{IdentitySource: r.GetIdentitySource()}), nil
}

// ListIdentitySources implements IdentitySourceService.
func (a *API) ListIdentitySources(ctx context.Context, req *connect.Request[adminv1.ListIdentitySourcesRequest]) (*connect.Response[adminv1.ListIdentitySourcesResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.IdentitySource, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListIdentitySourcesResponse{NextPageToken: next}
	for _, r := range items {
		out.IdentitySources = append(out.IdentitySources, r.GetIdentitySource())
	}
	return resp(out), nil
}

// UpdateIdentitySource implements IdentitySourceService.
func (a *API) UpdateIdentitySource(ctx context.Context, req *connect.Request[adminv1.UpdateIdentitySourceRequest]) (*connect.Response[adminv1.UpdateIdentitySourceResponse], error) {
	s, err := a.identityInput(ctx, req.Msg.GetIdentitySource())
	if err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "IdentitySourceService.UpdateIdentitySource", resource.Wrap(s), fsmv1.WriteMode_WRITE_MODE_UPDATE, req.Msg.GetIdentitySource().GetMeta().GetRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.UpdateIdentitySourceResponse{IdentitySource: r.GetIdentitySource()}), nil
}

// DeleteIdentitySource implements IdentitySourceService.
func (a *API) DeleteIdentitySource(ctx context.Context, req *connect.Request[adminv1.DeleteIdentitySourceRequest]) (*connect.Response[adminv1.DeleteIdentitySourceResponse], error) {
	if err := a.remove(ctx, req.Header(), "IdentitySourceService.DeleteIdentitySource", resource.IdentitySource, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteIdentitySourceResponse{}), nil
}
