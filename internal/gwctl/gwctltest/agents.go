package gwctltest

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

type agents struct {
	adminv1connect.UnimplementedAgentServiceHandler
	state *State
}

func (h *agents) CreateAgent(_ context.Context, req *connect.Request[adminv1.CreateAgentRequest]) (*connect.Response[adminv1.CreateAgentResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Msg.GetAgent().GetMeta().GetName()
	if name == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("agent.meta.name is required"))
	}
	if _, ok := s.agents[name]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("agent %q already exists", name))
	}
	ag := proto.Clone(req.Msg.GetAgent()).(*configv1.Agent)
	ag.Meta = s.nextMeta(ag.GetMeta(), nil)
	resp := &adminv1.CreateAgentResponse{}
	if !req.Msg.GetNoApiKey() {
		id := fmt.Sprintf("k%d", s.revision)
		key := &configv1.ApiKey{Id: id, CreateTime: timestamppb.New(Now)}
		if ttl := req.Msg.GetApiKeyTtl(); ttl != nil {
			key.ExpireTime = timestamppb.New(Now.Add(ttl.AsDuration()))
		}
		ag.ApiKeys = []*configv1.ApiKey{key}
		resp.ApiKey = "pck_" + id + "_s3cretpart"
	}
	s.agents[name] = ag
	resp.Agent = ag
	return connect.NewResponse(resp), nil
}

func (h *agents) GetAgent(_ context.Context, req *connect.Request[adminv1.GetAgentRequest]) (*connect.Response[adminv1.GetAgentResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	ag, ok := s.agents[req.Msg.GetName()]
	if !ok {
		return nil, notFound("agent", req.Msg.GetName())
	}
	return connect.NewResponse(&adminv1.GetAgentResponse{Agent: ag}), nil
}

func (h *agents) ListAgents(_ context.Context, req *connect.Request[adminv1.ListAgentsRequest]) (*connect.Response[adminv1.ListAgentsResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	items, next, err := page(s, s.agents, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListAgentsResponse{Agents: items, NextPageToken: next}), nil
}

func (h *agents) SetAgentDisabled(_ context.Context, req *connect.Request[adminv1.SetAgentDisabledRequest]) (*connect.Response[adminv1.SetAgentDisabledResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.agents[req.Msg.GetName()]
	if !ok {
		return nil, notFound("agent", req.Msg.GetName())
	}
	ag := proto.Clone(old).(*configv1.Agent)
	ag.Disabled = req.Msg.GetDisabled()
	ag.Meta = s.nextMeta(ag.GetMeta(), old.GetMeta())
	s.agents[ag.GetMeta().GetName()] = ag
	return connect.NewResponse(&adminv1.SetAgentDisabledResponse{Agent: ag}), nil
}

func (h *agents) DeleteAgent(_ context.Context, req *connect.Request[adminv1.DeleteAgentRequest]) (*connect.Response[adminv1.DeleteAgentResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.agents[req.Msg.GetName()]; !ok {
		return nil, notFound("agent", req.Msg.GetName())
	}
	delete(s.agents, req.Msg.GetName())
	s.revision++
	return connect.NewResponse(&adminv1.DeleteAgentResponse{}), nil
}
