package adminapi

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// rateLimitInput copies the caller-controlled fields of a rate limit.
func rateLimitInput(r *configv1.RateLimit) *configv1.RateLimit {
	return &configv1.RateLimit{
		Meta: inputMeta(r.GetMeta()), Key: slices.Clone(r.GetKey()), Rate: r.GetRate(), Period: r.GetPeriod(),
		Burst: r.GetBurst(), MaxInFlight: r.GetMaxInFlight(), Mode: r.GetMode(),
		Agents: slices.Clone(r.GetAgents()), Teams: slices.Clone(r.GetTeams()),
		Upstreams: slices.Clone(r.GetUpstreams()), Tools: slices.Clone(r.GetTools()),
	}
}

// SetRateLimit implements RateLimitService.
func (a *API) SetRateLimit(ctx context.Context, req *connect.Request[adminv1.SetRateLimitRequest]) (*connect.Response[adminv1.SetRateLimitResponse], error) {
	if req.Msg.GetRateLimit() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("rate_limit is required"))
	}
	r, err := a.put(ctx, req.Header(), "RateLimitService.SetRateLimit", resource.Wrap(rateLimitInput(req.Msg.GetRateLimit())), fsmv1.WriteMode_WRITE_MODE_UPSERT, req.Msg.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetRateLimitResponse{RateLimit: r.GetRateLimit()}), nil
}

// GetRateLimit implements RateLimitService.
func (a *API) GetRateLimit(ctx context.Context, req *connect.Request[adminv1.GetRateLimitRequest]) (*connect.Response[adminv1.GetRateLimitResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.RateLimit, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetRateLimitResponse{RateLimit: r.GetRateLimit()}), nil
}

// ListRateLimits implements RateLimitService.
func (a *API) ListRateLimits(ctx context.Context, req *connect.Request[adminv1.ListRateLimitsRequest]) (*connect.Response[adminv1.ListRateLimitsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.RateLimit, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListRateLimitsResponse{NextPageToken: next}
	for _, r := range items {
		out.RateLimits = append(out.RateLimits, r.GetRateLimit())
	}
	return resp(out), nil
}

// DeleteRateLimit implements RateLimitService.
func (a *API) DeleteRateLimit(ctx context.Context, req *connect.Request[adminv1.DeleteRateLimitRequest]) (*connect.Response[adminv1.DeleteRateLimitResponse], error) {
	if err := a.remove(ctx, req.Header(), "RateLimitService.DeleteRateLimit", resource.RateLimit, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteRateLimitResponse{}), nil
}
