package gwctltest

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"google.golang.org/protobuf/proto"
)

type secrets struct {
	adminv1connect.UnimplementedSecretServiceHandler
	state *State
}

func (h *secrets) SetSecret(_ context.Context, req *connect.Request[adminv1.SetSecretRequest]) (*connect.Response[adminv1.SetSecretResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Msg.GetName()
	old := s.secrets[name]
	meta := &configv1.ResourceMeta{Name: name, Owner: req.Msg.GetOwner(), Description: req.Msg.GetDescription(), Labels: req.Msg.GetLabels()}
	hosts := req.Msg.GetHosts()
	if len(hosts) == 0 {
		if old == nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("a new secret needs the hosts it may be sent to"))
		}
		hosts = old.GetHosts()
	}
	sec := &configv1.Secret{
		Meta:    s.nextMeta(meta, old.GetMeta()),
		Version: old.GetVersion() + 1,
		Size:    int64(len(req.Msg.GetValue())),
		Hosts:   slices.Clone(hosts),
	}
	s.secrets[name] = sec
	s.secretValues[name] = append([]byte(nil), req.Msg.GetValue()...)
	return connect.NewResponse(&adminv1.SetSecretResponse{Secret: sec}), nil
}

func (h *secrets) BindSecret(_ context.Context, req *connect.Request[adminv1.BindSecretRequest]) (*connect.Response[adminv1.BindSecretResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.secrets[req.Msg.GetName()]
	if !ok {
		return nil, notFound("secret", req.Msg.GetName())
	}
	sec := proto.CloneOf(old)
	sec.Meta = s.nextMeta(old.GetMeta(), old.GetMeta())
	sec.Hosts = slices.Clone(req.Msg.GetHosts())
	s.secrets[req.Msg.GetName()] = sec
	return connect.NewResponse(&adminv1.BindSecretResponse{Secret: sec}), nil
}

func (h *secrets) GetSecret(_ context.Context, req *connect.Request[adminv1.GetSecretRequest]) (*connect.Response[adminv1.GetSecretResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[req.Msg.GetName()]
	if !ok {
		return nil, notFound("secret", req.Msg.GetName())
	}
	return connect.NewResponse(&adminv1.GetSecretResponse{Secret: sec}), nil
}

func (h *secrets) ListSecrets(_ context.Context, req *connect.Request[adminv1.ListSecretsRequest]) (*connect.Response[adminv1.ListSecretsResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	items, next, err := page(s, s.secrets, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ListSecretsResponse{Secrets: items, NextPageToken: next}), nil
}
