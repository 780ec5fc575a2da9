package adminapi

import (
	"context"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
)

// GetAuthorizationSnapshot implements AccessService: the configuration
// authorization reads, with nothing secret (see
// configsync.AuthorizationSnapshot).
func (a *API) GetAuthorizationSnapshot(ctx context.Context, req *connect.Request[adminv1.GetAuthorizationSnapshotRequest]) (*connect.Response[adminv1.GetAuthorizationSnapshotResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetAuthorizationSnapshotResponse{Snapshot: configsync.AuthorizationSnapshot(st)}), nil
}
