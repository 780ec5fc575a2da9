package gwctltest

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
)

// backupChunk is the size of SaveBackup's chunks, small so that tests see
// several.
const backupChunk = 1024

type backups struct {
	adminv1connect.UnimplementedBackupServiceHandler
	state *State
}

func (h *backups) SaveBackup(_ context.Context, _ *connect.Request[adminv1.SaveBackupRequest], stream *connect.ServerStream[adminv1.SaveBackupResponse]) error {
	s := h.state
	s.mu.Lock()
	data := s.backup
	s.mu.Unlock()
	if data == nil {
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("no backup set in the fake"))
	}
	for len(data) > 0 {
		n := min(backupChunk, len(data))
		if err := stream.Send(&adminv1.SaveBackupResponse{Chunk: data[:n]}); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func (h *backups) RestoreBackup(_ context.Context, req *connect.Request[adminv1.RestoreBackupRequest]) (*connect.Response[adminv1.RestoreBackupResponse], error) {
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restored = req.Msg.GetData()
	s.revision++
	return connect.NewResponse(&adminv1.RestoreBackupResponse{ConfigVersion: s.revision}), nil
}
