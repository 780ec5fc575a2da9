package adminapi

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

func (a *API) members(ctx context.Context) ([]*adminv1.ClusterMember, error) {
	out, _, err := a.membersAndVersion(ctx)
	return out, err
}

// membersAndVersion lists the members and the cluster version every voter
// supports.
func (a *API) membersAndVersion(ctx context.Context) ([]*adminv1.ClusterMember, clusterversion.Version, error) {
	ms, err := a.cfg.Cluster.Members()
	if err != nil {
		return nil, 0, a.storeError(ctx, err)
	}
	out := make([]*adminv1.ClusterMember, 0, len(ms))
	var voters []clusterversion.Voter
	for _, m := range ms {
		v := max(m.Version, clusterversion.Baseline)
		if m.Suffrage == "voter" {
			voters = append(voters, clusterversion.Voter{ID: m.ID, Version: v})
		}
		cm := &adminv1.ClusterMember{NodeId: m.ID, RaftAddr: m.RaftAddr, ApiAddr: m.APIAddr, Suffrage: m.Suffrage, Leader: m.Leader,
			MaxClusterVersion: uint32(v)}
		if m.ID == a.cfg.Cluster.NodeID() && !m.Leader {
			if t := a.cfg.Cluster.LastContact(); !t.IsZero() {
				cm.LastContact = timestamppb.New(t)
			}
		}
		out = append(out, cm)
	}
	return out, clusterversion.Effective(voters), nil
}

// GetClusterStatus implements ClusterService.
func (a *API) GetClusterStatus(ctx context.Context, req *connect.Request[adminv1.GetClusterStatusRequest]) (*connect.Response[adminv1.GetClusterStatusResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	members, version, err := a.membersAndVersion(ctx)
	if err != nil {
		return nil, err
	}
	leader, _ := a.cfg.Cluster.Leader()
	out := &adminv1.GetClusterStatusResponse{
		ClusterId:     st.Identity().GetClusterId(),
		NodeId:        a.cfg.Cluster.NodeID(),
		LeaderId:      leader,
		Members:       members,
		ConfigVersion: st.ConfigVersion(),
		CaCertPem:     st.Identity().GetCaCertPem(),
		AppliedIndex:  st.Index(),
		Dev:           a.cfg.Dev,
	}
	out.CaFingerprint = caFingerprint(st)
	out.ClusterVersion = uint32(version)
	return resp(out), nil
}

// IssueNodeCertificate implements ClusterService: any node can sign, since
// every node holds the sealed CA key and the key-encryption key.
func (a *API) IssueNodeCertificate(ctx context.Context, req *connect.Request[adminv1.IssueNodeCertificateRequest]) (*connect.Response[adminv1.IssueNodeCertificateResponse], error) {
	m := req.Msg
	if err := resource.ValidateName("node_id", m.GetNodeId()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if len(m.GetHosts()) > 32 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("at most 32 hosts"))
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	id := st.Identity()
	if id == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the cluster is not bootstrapped yet"))
	}
	keyPEM, err := a.cfg.Sealer.Open(id.GetCaKeySealed(), resource.CAKeyAAD)
	if err != nil {
		a.log.ErrorContext(ctx, "open the cluster CA key", "err", err)
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("this node cannot open the cluster CA key: is it given the cluster's key-encryption key? (the node's log has the details)"))
	}
	ca, err := pki.LoadCA([]byte(id.GetCaCertPem()), keyPEM)
	if err != nil {
		return nil, edge.Internal(ctx, a.log, "load the cluster CA", err)
	}
	cert, err := ca.SignNode([]byte(m.GetCsrPem()), m.GetNodeId(), m.GetHosts(), a.cfg.Now(), a.cfg.NodeCertTTL)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("sign node certificate: %w", err))
	}
	a.log.InfoContext(ctx, "issued node certificate", "node", m.GetNodeId(), "by", callerFrom(ctx).tokenID)
	return resp(&adminv1.IssueNodeCertificateResponse{CertPem: string(cert), CaCertPem: id.GetCaCertPem(), ClusterId: id.GetClusterId()}), nil
}

// AddNode implements ClusterService: it records the node's addresses, then
// makes it a voter.
func (a *API) AddNode(ctx context.Context, req *connect.Request[adminv1.AddNodeRequest]) (*connect.Response[adminv1.AddNodeResponse], error) {
	m := req.Msg
	node := &configv1.Node{Meta: &configv1.ResourceMeta{Name: m.GetNodeId()}, RaftAddr: m.GetRaftAddr(), ApiAddr: m.GetApiAddr()}
	if _, err := a.put(ctx, req.Header(), "ClusterService.AddNode", resource.Wrap(node), fsmv1.WriteMode_WRITE_MODE_UPSERT, 0); err != nil {
		return nil, err
	}
	if err := a.cfg.Cluster.AddVoter(ctx, m.GetNodeId(), m.GetRaftAddr()); err != nil {
		return nil, a.storeError(ctx, err)
	}
	a.log.InfoContext(ctx, "node added", "node", m.GetNodeId(), "raft_addr", m.GetRaftAddr(), "by", callerFrom(ctx).tokenID)
	members, err := a.members(ctx)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.AddNodeResponse{Members: members}), nil
}

// RemoveNode implements ClusterService.
func (a *API) RemoveNode(ctx context.Context, req *connect.Request[adminv1.RemoveNodeRequest]) (*connect.Response[adminv1.RemoveNodeResponse], error) {
	id := req.Msg.GetNodeId()
	if err := resource.ValidateName("node_id", id); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	ms, err := a.cfg.Cluster.Members()
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	found := false
	for _, m := range ms {
		found = found || m.ID == id
	}
	if !found {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("node %q is not a cluster member", id))
	}
	if len(ms) == 1 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("refusing to remove the only member of the cluster"))
	}
	if err := a.cfg.Cluster.RemoveServer(ctx, id); err != nil {
		return nil, a.storeError(ctx, err)
	}
	if err := a.remove(ctx, req.Header(), "ClusterService.RemoveNode", resource.Node, id, 0); err != nil && connect.CodeOf(err) != connect.CodeNotFound {
		return nil, err
	}
	a.log.InfoContext(ctx, "node removed", "node", id, "by", callerFrom(ctx).tokenID)
	members, err := a.members(ctx)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.RemoveNodeResponse{Members: members}), nil
}

// caFingerprint is the fingerprint of the cluster CA in st ("" before
// bootstrap), which gwctl and data planes pin.
func caFingerprint(st *state.State) string {
	pem := st.Identity().GetCaCertPem()
	if pem == "" {
		return ""
	}
	ca, err := pki.ParseCertificatePEM([]byte(pem))
	if err != nil {
		return ""
	}
	return pki.Fingerprint(ca.Raw)
}
