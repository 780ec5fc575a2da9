package adminapi

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// valueListInput copies the caller-controlled fields of a value list.
func valueListInput(l *configv1.ValueList) *configv1.ValueList {
	return &configv1.ValueList{Meta: inputMeta(l.GetMeta()), Values: slices.Clone(l.GetValues())}
}

// CreateValueList implements ValueListService.
func (a *API) CreateValueList(ctx context.Context, req *connect.Request[adminv1.CreateValueListRequest]) (*connect.Response[adminv1.CreateValueListResponse], error) {
	if req.Msg.GetValueList() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("value_list is required"))
	}
	r, err := a.put(ctx, req.Header(), "ValueListService.CreateValueList", resource.Wrap(valueListInput(req.Msg.GetValueList())), fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.CreateValueListResponse{ValueList: r.GetValueList()}), nil
}

// GetValueList implements ValueListService.
func (a *API) GetValueList(ctx context.Context, req *connect.Request[adminv1.GetValueListRequest]) (*connect.Response[adminv1.GetValueListResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	r, ok := st.Get(resource.ValueList, req.Msg.GetName())
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%s %q does not exist", resource.ValueList, req.Msg.GetName()))
	}
	out := &adminv1.GetValueListResponse{ValueList: r.GetValueList()}
	if l, ok := st.Get(resource.ListLearning, req.Msg.GetName()); ok {
		out.Learning = l.GetListLearning()
	}
	return resp(out), nil
}

// ListValueLists implements ValueListService.
func (a *API) ListValueLists(ctx context.Context, req *connect.Request[adminv1.ListValueListsRequest]) (*connect.Response[adminv1.ListValueListsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.ValueList, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListValueListsResponse{NextPageToken: next}
	for _, r := range items {
		out.ValueLists = append(out.ValueLists, r.GetValueList())
	}
	return resp(out), nil
}

// UpdateValueList implements ValueListService.
func (a *API) UpdateValueList(ctx context.Context, req *connect.Request[adminv1.UpdateValueListRequest]) (*connect.Response[adminv1.UpdateValueListResponse], error) {
	if req.Msg.GetValueList() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("value_list is required"))
	}
	r, err := a.put(ctx, req.Header(), "ValueListService.UpdateValueList", resource.Wrap(valueListInput(req.Msg.GetValueList())), fsmv1.WriteMode_WRITE_MODE_UPDATE, req.Msg.GetValueList().GetMeta().GetRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.UpdateValueListResponse{ValueList: r.GetValueList()}), nil
}

// DeleteValueList implements ValueListService.
func (a *API) DeleteValueList(ctx context.Context, req *connect.Request[adminv1.DeleteValueListRequest]) (*connect.Response[adminv1.DeleteValueListResponse], error) {
	if err := a.remove(ctx, req.Header(), "ValueListService.DeleteValueList", resource.ValueList, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteValueListResponse{}), nil
}

// AddValues implements ValueListService. It is a read-modify-write at the
// list's revision (see modify): a concurrent change makes an attempt fail
// with a revision conflict and the next attempt re-reads, so no change is
// lost. Values already present are kept once; adding is idempotent, which
// also makes a retried call harmless.
func (a *API) AddValues(ctx context.Context, req *connect.Request[adminv1.AddValuesRequest]) (*connect.Response[adminv1.AddValuesResponse], error) {
	add, err := membershipInput(req.Msg.GetValues())
	if err != nil {
		return nil, err
	}
	r, err := a.modify(ctx, req.Header(), "ValueListService.AddValues", resource.ValueList, req.Msg.GetName(), func(cur *fsmv1.Resource) error {
		l := cur.GetValueList()
		for _, v := range add {
			if !slices.Contains(l.GetValues(), v) {
				l.Values = append(l.Values, v)
			}
		}
		if len(l.GetValues()) > resource.MaxListValues {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("value list %q would hold %d values, more than %d", req.Msg.GetName(), len(l.GetValues()), resource.MaxListValues))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.AddValuesResponse{ValueList: r.GetValueList()}), nil
}

// RemoveValues implements ValueListService, atomically like AddValues.
// Values not in the list are ignored.
func (a *API) RemoveValues(ctx context.Context, req *connect.Request[adminv1.RemoveValuesRequest]) (*connect.Response[adminv1.RemoveValuesResponse], error) {
	remove, err := membershipInput(req.Msg.GetValues())
	if err != nil {
		return nil, err
	}
	r, err := a.modify(ctx, req.Header(), "ValueListService.RemoveValues", resource.ValueList, req.Msg.GetName(), func(cur *fsmv1.Resource) error {
		l := cur.GetValueList()
		l.Values = slices.DeleteFunc(l.Values, func(v string) bool { return slices.Contains(remove, v) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.RemoveValuesResponse{ValueList: r.GetValueList()}), nil
}

// membershipInput checks the values of an AddValues or RemoveValues call and
// returns them sorted and without repeats.
func membershipInput(values []string) ([]string, error) {
	if len(values) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("values: give at least one value"))
	}
	if len(values) > resource.MaxListValues {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("values: at most %d values", resource.MaxListValues))
	}
	for i, v := range values {
		if err := resource.ValidateListValue(fmt.Sprintf("values[%d]", i), v); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
	}
	out := slices.Clone(values)
	slices.Sort(out)
	return slices.Compact(out), nil
}
