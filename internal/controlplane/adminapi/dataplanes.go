package adminapi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// DefaultJoinTTL is the lifetime of a join credential created without one.
const DefaultJoinTTL = 365 * 24 * time.Hour

// CreateJoinCredential implements DataplaneService.
func (a *API) CreateJoinCredential(ctx context.Context, req *connect.Request[adminv1.CreateJoinCredentialRequest]) (*connect.Response[adminv1.CreateJoinCredentialResponse], error) {
	m := req.Msg
	if err := resource.ValidateName("name", m.GetName()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	ttl := DefaultJoinTTL
	if m.GetTtl() != nil {
		ttl = m.GetTtl().AsDuration()
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("ttl must be between 1s and %s", MaxTokenTTL))
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	fp := caFingerprint(st)
	minted, err := a.mint(ctx, credential.AdminToken, req.Header(), "DataplaneService.CreateJoinCredential")
	if err != nil {
		return nil, err
	}
	tok := &configv1.AdminToken{
		Meta:       &configv1.ResourceMeta{Name: minted.ID, Description: m.GetDescription()},
		Role:       configv1.Role_ROLE_DATAPLANE,
		Sha256:     minted.SHA256,
		ExpireTime: timestamppb.New(a.cfg.Now().Add(ttl)),
		Dataplane:  m.GetName(),
	}
	if _, err := a.put(ctx, req.Header(), "DataplaneService.CreateJoinCredential", resource.Wrap(tok), fsmv1.WriteMode_WRITE_MODE_CREATE, 0); err != nil {
		return nil, err
	}
	cred := joincred.Credential{Name: m.GetName(), Token: minted.Text, CAFingerprint: fp}
	return resp(&adminv1.CreateJoinCredentialResponse{Credential: cred.Encode(), TokenId: minted.ID, CaFingerprint: fp}), nil
}

// RevokeJoinCredential implements DataplaneService.
func (a *API) RevokeJoinCredential(ctx context.Context, req *connect.Request[adminv1.RevokeJoinCredentialRequest]) (*connect.Response[adminv1.RevokeJoinCredentialResponse], error) {
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	tok := state.DataplaneToken(st.Each, req.Msg.GetName())
	if tok == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("data plane %q has no join credential", req.Msg.GetName()))
	}
	if err := a.remove(ctx, req.Header(), "DataplaneService.RevokeJoinCredential", resource.AdminToken, tok.GetMeta().GetName(), tok.GetMeta().GetRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.RevokeJoinCredentialResponse{}), nil
}

// ListDataplanes implements DataplaneService: it merges what every node
// knows, keeping each data plane's most recent report.
func (a *API) ListDataplanes(ctx context.Context, req *connect.Request[adminv1.ListDataplanesRequest]) (*connect.Response[adminv1.ListDataplanesResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	dps, err := a.dataplanes(ctx, st)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.ListDataplanesResponse{ClusterVersion: st.ConfigVersion(), ClusterEpoch: st.Epoch(),
		Frozen: st.Freeze().GetFrozen(), FreezeReason: st.Freeze().GetReason(), Dataplanes: dps}), nil
}

// dataplanes merges what every node knows of the data planes, keeping
// each one's most recent report, in name order.
func (a *API) dataplanes(ctx context.Context, st *state.State) ([]*adminv1.DataplaneStatus, error) {
	all, err := a.cfg.Cluster.DataplaneStatuses(ctx)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	merged := map[string]*adminv1.DataplaneStatus{}
	for _, s := range all {
		cur, ok := merged[s.GetName()]
		if !ok || s.GetConnected() && !cur.GetConnected() ||
			s.GetConnected() == cur.GetConnected() && s.GetLastSeen().AsTime().After(cur.GetLastSeen().AsTime()) {
			merged[s.GetName()] = s
		}
	}
	var out []*adminv1.DataplaneStatus
	for _, s := range merged {
		if v := st.ConfigVersion(); v > s.GetServingVersion() {
			s.Lag = v - s.GetServingVersion()
		}
		if e := s.GetServingEpoch(); e != 0 && e < st.Epoch() {
			// An earlier epoch is behind whatever its number says.
			s.Lag = max(s.GetLag(), 1)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

// SetFreeze implements DataplaneService.
func (a *API) SetFreeze(ctx context.Context, req *connect.Request[adminv1.SetFreezeRequest]) (*connect.Response[adminv1.SetFreezeResponse], error) {
	reqID, err := requestID(req.Header())
	if err != nil {
		return nil, err
	}
	if len(req.Msg.GetReason()) > 1024 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("reason: at most 1024 bytes"))
	}
	cmd := a.command(ctx, reqID, "DataplaneService.SetFreeze")
	cmd.Op = &fsmv1.Command_SetFreeze{SetFreeze: &fsmv1.SetFreeze{Frozen: req.Msg.GetFrozen(), Reason: req.Msg.GetReason()}}
	res, err := a.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	a.log.WarnContext(ctx, "emergency brake changed", "frozen", req.Msg.GetFrozen(), "by", callerFrom(ctx).tokenID)
	return resp(&adminv1.SetFreezeResponse{ConfigVersion: res.GetIndex()}), nil
}
