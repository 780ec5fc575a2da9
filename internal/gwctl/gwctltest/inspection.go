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

// inspection stores rules as given; it validates nothing but names and
// the required side and mode (the real control plane checks the rest).
type inspection struct {
	adminv1connect.UnimplementedInspectionServiceHandler
	state *State
}

func (h *inspection) put(r *configv1.InspectionRule, create bool) (*configv1.InspectionRule, error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.GetMeta().GetName()
	old, exists := s.rules[name]
	switch {
	case create && exists:
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("inspection rule %q already exists", name))
	case !create && !exists:
		return nil, notFound("inspection rule", name)
	case r.GetSide() == configv1.InspectionSide_INSPECTION_SIDE_UNSPECIFIED || r.GetMode() == configv1.InspectionMode_INSPECTION_MODE_UNSPECIFIED:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("side and mode are required"))
	}
	r = proto.CloneOf(r)
	r.Meta = s.nextMeta(r.GetMeta(), old.GetMeta())
	s.rules[name] = r
	return r, nil
}

func (h *inspection) CreateInspectionRule(_ context.Context, req *connect.Request[adminv1.CreateInspectionRuleRequest]) (*connect.Response[adminv1.CreateInspectionRuleResponse], error) {
	r, err := h.put(req.Msg.GetRule(), true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.CreateInspectionRuleResponse{Rule: r}), nil
}

func (h *inspection) UpdateInspectionRule(_ context.Context, req *connect.Request[adminv1.UpdateInspectionRuleRequest]) (*connect.Response[adminv1.UpdateInspectionRuleResponse], error) {
	r, err := h.put(req.Msg.GetRule(), false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.UpdateInspectionRuleResponse{Rule: r}), nil
}

func (h *inspection) GetInspectionRule(_ context.Context, req *connect.Request[adminv1.GetInspectionRuleRequest]) (*connect.Response[adminv1.GetInspectionRuleResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rules[req.Msg.GetName()]
	if !ok {
		return nil, notFound("inspection rule", req.Msg.GetName())
	}
	return connect.NewResponse(&adminv1.GetInspectionRuleResponse{Rule: r}), nil
}

func (h *inspection) ListInspectionRules(_ context.Context, req *connect.Request[adminv1.ListInspectionRulesRequest]) (*connect.Response[adminv1.ListInspectionRulesResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	items, next, err := page(s, s.rules, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListInspectionRulesResponse{Rules: items, NextPageToken: next}), nil
}

func (h *inspection) DeleteInspectionRule(_ context.Context, req *connect.Request[adminv1.DeleteInspectionRuleRequest]) (*connect.Response[adminv1.DeleteInspectionRuleResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rules[req.Msg.GetName()]; !ok {
		return nil, notFound("inspection rule", req.Msg.GetName())
	}
	delete(s.rules, req.Msg.GetName())
	return connect.NewResponse(&adminv1.DeleteInspectionRuleResponse{}), nil
}

// InspectionRule returns the stored rule, or nil.
func (s *State) InspectionRule(name string) *configv1.InspectionRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rules[name]
}
