package gwctltest

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// valueLists keeps lists sorted and refuses duplicates, like the real
// control plane; it knows nothing of policy references.
type valueLists struct {
	adminv1connect.UnimplementedValueListServiceHandler
	state *State
}

func (h *valueLists) CreateValueList(_ context.Context, req *connect.Request[adminv1.CreateValueListRequest]) (*connect.Response[adminv1.CreateValueListResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	l := proto.CloneOf(req.Msg.GetValueList())
	name := l.GetMeta().GetName()
	if _, ok := s.valueLists[name]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("value list %q already exists", name))
	}
	slices.Sort(l.Values)
	if len(slices.Compact(slices.Clone(l.Values))) != len(l.Values) {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("values: a value appears more than once"))
	}
	l.Meta = s.nextMeta(l.GetMeta(), nil)
	s.valueLists[name] = l
	return connect.NewResponse(&adminv1.CreateValueListResponse{ValueList: l}), nil
}

func (h *valueLists) GetValueList(_ context.Context, req *connect.Request[adminv1.GetValueListRequest]) (*connect.Response[adminv1.GetValueListResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.valueLists[req.Msg.GetName()]
	if !ok {
		return nil, notFound("value list", req.Msg.GetName())
	}
	return connect.NewResponse(&adminv1.GetValueListResponse{ValueList: l}), nil
}

func (h *valueLists) ListValueLists(_ context.Context, req *connect.Request[adminv1.ListValueListsRequest]) (*connect.Response[adminv1.ListValueListsResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	items, next, err := page(s, s.valueLists, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListValueListsResponse{ValueLists: items, NextPageToken: next}), nil
}

func (h *valueLists) DeleteValueList(_ context.Context, req *connect.Request[adminv1.DeleteValueListRequest]) (*connect.Response[adminv1.DeleteValueListResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.valueLists[req.Msg.GetName()]; !ok {
		return nil, notFound("value list", req.Msg.GetName())
	}
	delete(s.valueLists, req.Msg.GetName())
	return connect.NewResponse(&adminv1.DeleteValueListResponse{}), nil
}

func (h *valueLists) AddValues(_ context.Context, req *connect.Request[adminv1.AddValuesRequest]) (*connect.Response[adminv1.AddValuesResponse], error) {
	l, err := h.change(req.Msg.GetName(), func(values []string) []string {
		values = append(values, req.Msg.GetValues()...)
		slices.Sort(values)
		return slices.Compact(values)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.AddValuesResponse{ValueList: l}), nil
}

func (h *valueLists) RemoveValues(_ context.Context, req *connect.Request[adminv1.RemoveValuesRequest]) (*connect.Response[adminv1.RemoveValuesResponse], error) {
	l, err := h.change(req.Msg.GetName(), func(values []string) []string {
		return slices.DeleteFunc(values, func(v string) bool { return slices.Contains(req.Msg.GetValues(), v) })
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.RemoveValuesResponse{ValueList: l}), nil
}

func (h *valueLists) change(name string, fn func([]string) []string) (*configv1.ValueList, error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.valueLists[name]
	if !ok {
		return nil, notFound("value list", name)
	}
	l := proto.CloneOf(cur)
	l.Values = fn(l.Values)
	l.Meta = s.nextMeta(cur.GetMeta(), cur.GetMeta())
	s.valueLists[name] = l
	return l, nil
}

// ValueList returns the stored value list, or nil.
func (s *State) ValueList(name string) *configv1.ValueList {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.valueLists[name]
}
