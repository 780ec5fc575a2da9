package gwctltest

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

type adminLog struct {
	adminv1connect.UnimplementedAdminLogServiceHandler
	state *State
}

// ListAdminEvents lists the writes the cluster applied, newest first; the
// page token is the index to start at.
func (h *adminLog) ListAdminEvents(_ context.Context, req *connect.Request[adminv1.ListAdminEventsRequest]) (*connect.Response[adminv1.ListAdminEventsResponse], error) {
	s := h.state
	s.mu.Lock()
	events := slices.Clone(s.events)
	s.mu.Unlock()
	slices.Reverse(events)
	m := make(map[string]*configv1.AdminEvent, len(events))
	for i, e := range events {
		m[fmt.Sprintf("%08d", i)] = e // page sorts by key: keeps newest first
	}
	items, next, err := page(s, m, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListAdminEventsResponse{Events: items, NextPageToken: next}), nil
}
