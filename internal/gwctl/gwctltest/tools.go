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

type tools struct {
	adminv1connect.UnimplementedToolServiceHandler
	state *State
}

// PinTool appends a version with a made-up hash.
func (h *tools) PinTool(_ context.Context, req *connect.Request[adminv1.PinToolRequest]) (*connect.Response[adminv1.PinToolResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	m := req.Msg
	name := m.GetUpstream() + "/" + m.GetTool()
	pin := s.pins[name]
	if pin == nil {
		pin = &configv1.ToolPin{Upstream: m.GetUpstream(), Tool: m.GetTool()}
	}
	pin.Meta = s.nextMeta(&configv1.ResourceMeta{Name: name}, pin.GetMeta())
	pin.Versions = append(pin.Versions, &configv1.ToolVersion{
		Version:        int64(len(pin.GetVersions()) + 1),
		DefinitionHash: fmt.Sprintf("sha256:%064x", len(m.GetDefinition())),
		Definition:     m.GetDefinition(),
		Class:          m.GetClass(),
		ApproveTime:    timestamppb.New(Now),
		ApprovedBy:     "tok1",
	})
	s.pins[name] = pin
	return connect.NewResponse(&adminv1.PinToolResponse{Pin: pin}), nil
}

func (h *tools) GetToolPin(_ context.Context, req *connect.Request[adminv1.GetToolPinRequest]) (*connect.Response[adminv1.GetToolPinResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Msg.GetUpstream() + "/" + req.Msg.GetTool()
	pin, ok := s.pins[name]
	if !ok {
		return nil, notFound("tool pin", name)
	}
	return connect.NewResponse(&adminv1.GetToolPinResponse{Pin: pin}), nil
}

func (h *tools) ListToolPins(_ context.Context, req *connect.Request[adminv1.ListToolPinsRequest]) (*connect.Response[adminv1.ListToolPinsResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	items, next, err := page(s, s.pins, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListToolPinsResponse{Pins: items, NextPageToken: next}), nil
}
