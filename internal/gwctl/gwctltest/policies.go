package gwctltest

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// SchemaCedar and SchemaJSON are what GetCedarSchema returns.
const (
	SchemaCedar = "namespace Portcullis {\n  entity Agent;\n}\n"
	SchemaJSON  = `{"Portcullis":{"entityTypes":{"Agent":{}},"actions":{}}}`
)

type policies struct {
	adminv1connect.UnimplementedPolicyServiceHandler
	state *State
}

// ApplyPolicySet stands in for Cedar validation: every line containing
// "invalid" is an error, reported as "file:line:1: ...".
func (h *policies) ApplyPolicySet(_ context.Context, req *connect.Request[adminv1.ApplyPolicySetRequest]) (*connect.Response[adminv1.ApplyPolicySetResponse], error) {
	m := req.Msg
	filename := m.GetFilename()
	if filename == "" {
		filename = m.GetName() + ".cedar"
	}
	var problems, ids []string
	for i, line := range strings.Split(m.GetSource(), "\n") {
		if strings.Contains(line, "invalid") {
			problems = append(problems, fmt.Sprintf("%s:%d:1: unexpected token %q", filename, i+1, strings.TrimSpace(line)))
		}
		if strings.HasPrefix(strings.TrimSpace(line), "permit") || strings.HasPrefix(strings.TrimSpace(line), "forbid") {
			ids = append(ids, fmt.Sprintf("%s/policy%d", m.GetName(), len(ids)))
		}
	}
	if len(problems) > 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s", strings.Join(problems, "\n")))
	}
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.policySets[m.GetName()]
	meta := &configv1.ResourceMeta{Name: m.GetName(), Owner: m.GetOwner(), Description: m.GetDescription(), Labels: m.GetLabels()}
	ps := &configv1.PolicySet{Source: m.GetSource(), Filename: filename, Version: old.GetVersion() + 1, PolicyIds: ids, Disabled: m.GetDisabled()}
	if m.GetDryRun() {
		ps.Meta = meta
		return connect.NewResponse(&adminv1.ApplyPolicySetResponse{PolicySet: ps}), nil
	}
	if old != nil && old.GetSource() == m.GetSource() {
		return connect.NewResponse(&adminv1.ApplyPolicySetResponse{PolicySet: old, Unchanged: true}), nil
	}
	ps.Meta = s.nextMeta(meta, old.GetMeta())
	s.policySets[m.GetName()] = ps
	return connect.NewResponse(&adminv1.ApplyPolicySetResponse{PolicySet: ps}), nil
}

func (h *policies) GetPolicySet(_ context.Context, req *connect.Request[adminv1.GetPolicySetRequest]) (*connect.Response[adminv1.GetPolicySetResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.policySets[req.Msg.GetName()]
	if !ok {
		return nil, notFound("policy set", req.Msg.GetName())
	}
	return connect.NewResponse(&adminv1.GetPolicySetResponse{PolicySet: ps}), nil
}

func (h *policies) GetCedarSchema(context.Context, *connect.Request[adminv1.GetCedarSchemaRequest]) (*connect.Response[adminv1.GetCedarSchemaResponse], error) {
	return connect.NewResponse(&adminv1.GetCedarSchemaResponse{Cedar: SchemaCedar, Json: SchemaJSON}), nil
}
