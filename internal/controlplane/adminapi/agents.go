package adminapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// agentInput copies the caller-controlled fields of an agent.
func agentInput(a *configv1.Agent) *configv1.Agent {
	return &configv1.Agent{
		Meta:             inputMeta(a.GetMeta()),
		Team:             a.GetTeam(),
		Disabled:         a.GetDisabled(),
		JwtSubjects:      a.GetJwtSubjects(),
		SpiffeIds:        a.GetSpiffeIds(),
		CertFingerprints: a.GetCertFingerprints(),
	}
}

// CreateAgent implements AgentService.
func (a *API) CreateAgent(ctx context.Context, req *connect.Request[adminv1.CreateAgentRequest]) (*connect.Response[adminv1.CreateAgentResponse], error) {
	if req.Msg.GetAgent() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("agent is required"))
	}
	agent := agentInput(req.Msg.GetAgent())
	var key credential.Minted
	if !req.Msg.GetNoApiKey() {
		var err error
		if key, err = a.mint(ctx, credential.APIKey, req.Header(), "AgentService.CreateAgent"); err != nil {
			return nil, err
		}
		k := &configv1.ApiKey{Id: key.ID, Sha256: key.SHA256, CreateTime: timestamppb.New(a.cfg.Now())}
		if ttl := req.Msg.GetApiKeyTtl(); ttl != nil && ttl.AsDuration() != 0 {
			if ttl.AsDuration() < 0 {
				return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("api_key_ttl must be positive"))
			}
			k.ExpireTime = timestamppb.New(a.cfg.Now().Add(ttl.AsDuration()))
		}
		agent.ApiKeys = []*configv1.ApiKey{k}
	}
	r, err := a.put(ctx, req.Header(), "AgentService.CreateAgent", resource.Wrap(agent), fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.CreateAgentResponse{Agent: publicAgent(r.GetAgent()), ApiKey: key.Text}), nil
}

// GetAgent implements AgentService.
func (a *API) GetAgent(ctx context.Context, req *connect.Request[adminv1.GetAgentRequest]) (*connect.Response[adminv1.GetAgentResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.Agent, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetAgentResponse{Agent: publicAgent(r.GetAgent())}), nil
}

// ListAgents implements AgentService.
func (a *API) ListAgents(ctx context.Context, req *connect.Request[adminv1.ListAgentsRequest]) (*connect.Response[adminv1.ListAgentsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.Agent, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListAgentsResponse{NextPageToken: next}
	for _, r := range items {
		out.Agents = append(out.Agents, publicAgent(r.GetAgent()))
	}
	return resp(out), nil
}

// UpdateAgent implements AgentService. API keys are kept as they are.
func (a *API) UpdateAgent(ctx context.Context, req *connect.Request[adminv1.UpdateAgentRequest]) (*connect.Response[adminv1.UpdateAgentResponse], error) {
	in := req.Msg.GetAgent()
	if in == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("agent is required"))
	}
	r, err := a.modify(ctx, req.Header(), "AgentService.UpdateAgent", resource.Agent, in.GetMeta().GetName(), func(cur *fsmv1.Resource) error {
		if want := in.GetMeta().GetRevision(); want != 0 && want != cur.GetAgent().GetMeta().GetRevision() {
			return connect.NewError(connect.CodeAborted, fmt.Errorf("agent %q is at revision %d, not %d", in.GetMeta().GetName(), cur.GetAgent().GetMeta().GetRevision(), want))
		}
		next := agentInput(in)
		next.ApiKeys = cur.GetAgent().GetApiKeys()
		cur.Kind = &fsmv1.Resource_Agent{Agent: next}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.UpdateAgentResponse{Agent: publicAgent(r.GetAgent())}), nil
}

// SetAgentDisabled implements AgentService.
func (a *API) SetAgentDisabled(ctx context.Context, req *connect.Request[adminv1.SetAgentDisabledRequest]) (*connect.Response[adminv1.SetAgentDisabledResponse], error) {
	r, err := a.modify(ctx, req.Header(), "AgentService.SetAgentDisabled", resource.Agent, req.Msg.GetName(), func(cur *fsmv1.Resource) error {
		cur.GetAgent().Disabled = req.Msg.GetDisabled()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetAgentDisabledResponse{Agent: publicAgent(r.GetAgent())}), nil
}

// DeleteAgent implements AgentService.
func (a *API) DeleteAgent(ctx context.Context, req *connect.Request[adminv1.DeleteAgentRequest]) (*connect.Response[adminv1.DeleteAgentResponse], error) {
	if err := a.remove(ctx, req.Header(), "AgentService.DeleteAgent", resource.Agent, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteAgentResponse{}), nil
}

// DefaultKeyOverlap is how long the previous API keys stay valid after a
// rotation when the caller does not say.
const DefaultKeyOverlap = 24 * time.Hour

// RotateAgentKey implements AgentService: a new key, and the old ones
// expiring after the overlap, so the agent can switch without downtime.
func (a *API) RotateAgentKey(ctx context.Context, req *connect.Request[adminv1.RotateAgentKeyRequest]) (*connect.Response[adminv1.RotateAgentKeyResponse], error) {
	overlap := DefaultKeyOverlap
	if req.Msg.GetOverlap() != nil {
		overlap = req.Msg.GetOverlap().AsDuration()
	}
	if overlap < 0 || overlap > 30*24*time.Hour {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("overlap must be between 0s and 30d"))
	}
	ttl := req.Msg.GetTtl().AsDuration()
	if ttl < 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("ttl must not be negative"))
	}
	key, err := a.mint(ctx, credential.APIKey, req.Header(), "AgentService.RotateAgentKey")
	if err != nil {
		return nil, err
	}
	now := a.cfg.Now()
	r, err := a.modify(ctx, req.Header(), "AgentService.RotateAgentKey", resource.Agent, req.Msg.GetName(), func(cur *fsmv1.Resource) error {
		ag := cur.GetAgent()
		if slices.ContainsFunc(ag.GetApiKeys(), func(k *configv1.ApiKey) bool { return k.GetId() == key.ID }) {
			return nil // a retry of this very rotation: already applied
		}
		until := timestamppb.New(now.Add(overlap))
		var keep []*configv1.ApiKey
		for _, k := range ag.GetApiKeys() {
			if k.GetExpireTime() != nil && !k.GetExpireTime().AsTime().After(now) {
				continue // already expired: drop
			}
			if k.GetExpireTime() == nil || k.GetExpireTime().AsTime().After(until.AsTime()) {
				k.ExpireTime = until
			}
			keep = append(keep, k)
		}
		if overlap == 0 {
			keep = nil
		}
		if len(keep) > 1 {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("agent %q already has %d live keys (a rotation is in progress); wait for the overlap to end or rotate with --overlap 0s", req.Msg.GetName(), len(keep)))
		}
		nk := &configv1.ApiKey{Id: key.ID, Sha256: key.SHA256, CreateTime: timestamppb.New(now)}
		if ttl > 0 {
			nk.ExpireTime = timestamppb.New(now.Add(ttl))
		}
		ag.ApiKeys = append(keep, nk)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.RotateAgentKeyResponse{Agent: publicAgent(r.GetAgent()), ApiKey: key.Text}), nil
}
