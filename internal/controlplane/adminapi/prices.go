package adminapi

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// modelPriceInput copies the caller-controlled fields of a price table;
// its name is always "<upstream>/<model>".
func modelPriceInput(p *configv1.ModelPrice) *configv1.ModelPrice {
	out := &configv1.ModelPrice{Meta: inputMeta(p.GetMeta()), Upstream: p.GetUpstream(), Model: p.GetModel()}
	out.Meta.Name = resource.ModelPriceName(p.GetUpstream(), p.GetModel())
	for _, e := range p.GetPrices() {
		out.Prices = append(out.Prices, proto.CloneOf(e))
	}
	return out
}

// SetModelPrice implements PriceService.
func (a *API) SetModelPrice(ctx context.Context, req *connect.Request[adminv1.SetModelPriceRequest]) (*connect.Response[adminv1.SetModelPriceResponse], error) {
	if req.Msg.GetModelPrice() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("model_price is required"))
	}
	r, err := a.put(ctx, req.Header(), "PriceService.SetModelPrice", resource.Wrap(modelPriceInput(req.Msg.GetModelPrice())), fsmv1.WriteMode_WRITE_MODE_UPSERT, req.Msg.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetModelPriceResponse{ModelPrice: r.GetModelPrice()}), nil
}

// GetModelPrice implements PriceService.
func (a *API) GetModelPrice(ctx context.Context, req *connect.Request[adminv1.GetModelPriceRequest]) (*connect.Response[adminv1.GetModelPriceResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.ModelPrice, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetModelPriceResponse{ModelPrice: r.GetModelPrice()}), nil
}

// ListModelPrices implements PriceService.
func (a *API) ListModelPrices(ctx context.Context, req *connect.Request[adminv1.ListModelPricesRequest]) (*connect.Response[adminv1.ListModelPricesResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.ModelPrice, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListModelPricesResponse{NextPageToken: next}
	for _, r := range items {
		out.ModelPrices = append(out.ModelPrices, r.GetModelPrice())
	}
	return resp(out), nil
}

// DeleteModelPrice implements PriceService.
func (a *API) DeleteModelPrice(ctx context.Context, req *connect.Request[adminv1.DeleteModelPriceRequest]) (*connect.Response[adminv1.DeleteModelPriceResponse], error) {
	if err := a.remove(ctx, req.Header(), "PriceService.DeleteModelPrice", resource.ModelPrice, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteModelPriceResponse{}), nil
}
