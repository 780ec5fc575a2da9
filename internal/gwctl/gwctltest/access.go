package gwctltest

import (
	"context"
	"errors"
	"net/netip"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/authz"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// access answers AccessService over the authorization snapshot a test
// set with SetAuthorizationSnapshot, with the real policy engine (as the
// control plane does), and records the last question.
type access struct {
	adminv1connect.UnimplementedAccessServiceHandler
	state *State
}

// SetAuthorizationSnapshot sets the configuration AccessService answers
// over (and GetAuthorizationSnapshot returns).
func (s *State) SetAuthorizationSnapshot(snap *snapshotv1.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authzSnapshot = proto.CloneOf(snap)
}

// LastCheck returns the last Check request received, or nil.
func (s *State) LastCheck() *adminv1.CheckRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastCheck
}

func (h *access) snapshot() (*snapshotv1.Snapshot, error) {
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	if h.state.authzSnapshot == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("gwctltest: no authorization snapshot set"))
	}
	return proto.CloneOf(h.state.authzSnapshot), nil
}

func (h *access) engine() (*authz.Engine, error) {
	snap, err := h.snapshot()
	if err != nil {
		return nil, err
	}
	e, err := authz.Compile(snap)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return e, nil
}

func (h *access) GetAuthorizationSnapshot(context.Context, *connect.Request[adminv1.GetAuthorizationSnapshotRequest]) (*connect.Response[adminv1.GetAuthorizationSnapshotResponse], error) {
	snap, err := h.snapshot()
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.GetAuthorizationSnapshotResponse{Snapshot: snap}), nil
}

func (h *access) Check(ctx context.Context, req *connect.Request[adminv1.CheckRequest]) (*connect.Response[adminv1.CheckResponse], error) {
	m := req.Msg
	h.state.mu.Lock()
	h.state.lastCheck = proto.CloneOf(m)
	h.state.mu.Unlock()
	e, err := h.engine()
	if err != nil {
		return nil, err
	}
	c := authz.Context{Protocol: m.GetProtocol(), Degraded: m.GetDegraded(), Findings: m.GetFindings()}
	if m.GetTime() != nil {
		c.Time = m.GetTime().AsTime()
	}
	if s := m.GetSourceIp(); s != "" {
		if c.SourceIP, err = netip.ParseAddr(s); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
	}
	ex, err := e.Explain(ctx, &authz.Request{
		Agent:     m.GetAgent(),
		User:      accessUser(m.GetUser()),
		Action:    m.GetAction(),
		Resource:  authz.Resource{Type: authz.ResourceType(m.GetResource().GetType()), ID: m.GetResource().GetId()},
		Arguments: []byte(m.GetArgumentsJson()),
		Context:   c.WithDefaults(Now),
	})
	if err != nil {
		return nil, accessError(err)
	}
	out := &adminv1.CheckResponse{Allowed: ex.Decision.Allowed, Errors: ex.Decision.Errors, InvalidArguments: ex.Decision.InvalidArguments, ConfigVersion: ex.Version}
	for _, p := range ex.Policies {
		out.Policies = append(out.Policies, &adminv1.PolicyRef{Id: p.ID, Effect: p.Effect, File: p.File, Line: int32(p.Line), Column: int32(p.Column)}) //nolint:gosec // test fixture positions are small
	}
	return connect.NewResponse(out), nil
}

func (h *access) WhoCan(ctx context.Context, req *connect.Request[adminv1.WhoCanRequest]) (*connect.Response[adminv1.WhoCanResponse], error) {
	m := req.Msg
	e, err := h.engine()
	if err != nil {
		return nil, err
	}
	agents, err := e.WhoCan(ctx, &authz.Request{
		User:     accessUser(m.GetUser()),
		Action:   m.GetAction(),
		Resource: authz.Resource{Type: authz.ResourceType(m.GetResource().GetType()), ID: m.GetResource().GetId()},
		Context:  authz.Context{Degraded: m.GetDegraded()},
	})
	if err != nil {
		return nil, accessError(err)
	}
	return connect.NewResponse(&adminv1.WhoCanResponse{Agents: agents, ConfigVersion: e.Version()}), nil
}

func accessUser(u *adminv1.AccessUser) *authz.User {
	if u == nil {
		return nil
	}
	return &authz.User{Source: u.GetSource(), Name: u.GetName(), Email: u.GetEmail(), Groups: u.GetGroups()}
}

func accessError(err error) error {
	switch {
	case errors.Is(err, authz.ErrUnknownAgent), errors.Is(err, authz.ErrUnknownResource):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, authz.ErrInvalidRequest):
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}
