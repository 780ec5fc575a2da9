package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/egress"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// checkEgress applies the egress policy to a URL a data plane or the
// control plane will call.
func (a *API) checkEgress(ctx context.Context, field, raw string, allowLinkLocal bool) error {
	p := a.cfg.Egress
	p.AllowLinkLocal = p.AllowLinkLocal || allowLinkLocal
	if err := p.CheckURL(ctx, raw, a.cfg.Resolver); err != nil {
		if errors.Is(err, egress.ErrResolve) {
			// The resolver's error names this node's DNS server: log it,
			// tell the caller only which name failed.
			a.log.WarnContext(ctx, "egress check: cannot resolve", "field", field, "err", err)
			host := raw
			if u, perr := url.Parse(raw); perr == nil {
				host = u.Hostname()
			}
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: this control-plane node cannot resolve %q; check the name (or the node's DNS) and retry", field, host))
		}
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", field, err))
	}
	return nil
}

// checkUpstream validates an upstream a caller writes: its fields, the
// egress policy for every URL it calls, and where its credential may go.
func (a *API) checkUpstream(ctx context.Context, u *configv1.Upstream) error {
	if err := resource.Validate(resource.Wrap(u)); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err := a.checkSecretUse(ctx, u); err != nil {
		return err
	}
	if err := a.checkEgress(ctx, "url", u.GetUrl(), u.GetAllowLinkLocal()); err != nil {
		return err
	}
	if o := u.GetCredential().GetOauthClientCredentials(); o != nil {
		return a.checkEgress(ctx, "credential.oauth_client_credentials.token_url", o.GetTokenUrl(), u.GetAllowLinkLocal())
	}
	return nil
}

func upstreamInput(u *configv1.Upstream) *configv1.Upstream {
	out := proto.Clone(u).(*configv1.Upstream)
	out.Meta = inputMeta(u.GetMeta())
	return out
}

// CreateUpstream implements UpstreamService.
func (a *API) CreateUpstream(ctx context.Context, req *connect.Request[adminv1.CreateUpstreamRequest]) (*connect.Response[adminv1.CreateUpstreamResponse], error) {
	if req.Msg.GetUpstream() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("upstream is required"))
	}
	u := upstreamInput(req.Msg.GetUpstream())
	if err := a.checkUpstream(ctx, u); err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "UpstreamService.CreateUpstream", resource.Wrap(u), fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.CreateUpstreamResponse{Upstream: r.GetUpstream()}), nil
}

// GetUpstream implements UpstreamService.
func (a *API) GetUpstream(ctx context.Context, req *connect.Request[adminv1.GetUpstreamRequest]) (*connect.Response[adminv1.GetUpstreamResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.Upstream, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetUpstreamResponse{Upstream: r.GetUpstream()}), nil
}

// ListUpstreams implements UpstreamService.
func (a *API) ListUpstreams(ctx context.Context, req *connect.Request[adminv1.ListUpstreamsRequest]) (*connect.Response[adminv1.ListUpstreamsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.Upstream, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListUpstreamsResponse{NextPageToken: next}
	for _, r := range items {
		out.Upstreams = append(out.Upstreams, r.GetUpstream())
	}
	return resp(out), nil
}

// UpdateUpstream implements UpstreamService.
func (a *API) UpdateUpstream(ctx context.Context, req *connect.Request[adminv1.UpdateUpstreamRequest]) (*connect.Response[adminv1.UpdateUpstreamResponse], error) {
	if req.Msg.GetUpstream() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("upstream is required"))
	}
	u := upstreamInput(req.Msg.GetUpstream())
	if err := a.checkUpstream(ctx, u); err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "UpstreamService.UpdateUpstream", resource.Wrap(u), fsmv1.WriteMode_WRITE_MODE_UPDATE, req.Msg.GetUpstream().GetMeta().GetRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.UpdateUpstreamResponse{Upstream: r.GetUpstream()}), nil
}

// DeleteUpstream implements UpstreamService.
func (a *API) DeleteUpstream(ctx context.Context, req *connect.Request[adminv1.DeleteUpstreamRequest]) (*connect.Response[adminv1.DeleteUpstreamResponse], error) {
	if err := a.remove(ctx, req.Header(), "UpstreamService.DeleteUpstream", resource.Upstream, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteUpstreamResponse{}), nil
}
