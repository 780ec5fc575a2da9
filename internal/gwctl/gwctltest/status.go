package gwctltest

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
)

type clusterStatus struct {
	adminv1connect.UnimplementedClusterServiceHandler
	state *State
	node  *Node
}

// GetClusterStatus reports a three-node cluster led by node-1, answered by
// "node-at-<host:port>".
func (h *clusterStatus) GetClusterStatus(context.Context, *connect.Request[adminv1.GetClusterStatusRequest]) (*connect.Response[adminv1.GetClusterStatusResponse], error) {
	s := h.state
	s.mu.Lock()
	version := s.revision
	s.mu.Unlock()
	resp := &adminv1.GetClusterStatusResponse{
		ClusterId:     "c-test",
		NodeId:        "node-at-" + strings.TrimPrefix(strings.TrimPrefix(h.node.URL, "http://"), "https://"),
		LeaderId:      "node-1",
		ConfigVersion: version,
		CaFingerprint: "sha256:00ff",
		AppliedIndex:  version,
	}
	for i := 1; i <= 3; i++ {
		resp.Members = append(resp.Members, &adminv1.ClusterMember{
			NodeId:   fmt.Sprintf("node-%d", i),
			RaftAddr: fmt.Sprintf("10.0.0.%d:7441", i),
			ApiAddr:  fmt.Sprintf("10.0.0.%d:7440", i),
			Suffrage: "voter",
			Leader:   i == 1,
		})
	}
	return connect.NewResponse(resp), nil
}
