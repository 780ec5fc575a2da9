package adminapi

import (
	"context"
	"errors"
	"io"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

const backupChunk = 256 << 10

// SaveBackup implements BackupService: it streams the state in the Raft
// snapshot format. Secrets stay sealed in it.
func (a *API) SaveBackup(ctx context.Context, req *connect.Request[adminv1.SaveBackupRequest], stream *connect.ServerStream[adminv1.SaveBackupResponse]) error {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := st.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	buf := make([]byte, backupChunk)
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			if serr := stream.Send(&adminv1.SaveBackupResponse{Chunk: buf[:n]}); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			a.log.InfoContext(ctx, "backup saved", "by", callerFrom(ctx).tokenID, "index", st.Index())
			return nil
		}
		if err != nil {
			return edge.Internal(ctx, a.log, "write the backup", err)
		}
	}
}

// RestoreBackup implements BackupService. The leader installs the backup
// as a new epoch (see raftstore.Node.RestoreLocal), so data planes, which
// never go back to an older version, accept it from the stream; a Touch
// command then also moves the config version past every version data
// planes have seen, for data planes that compare versions alone (built
// before epochs).
func (a *API) RestoreBackup(ctx context.Context, req *connect.Request[adminv1.RestoreBackupRequest]) (*connect.Response[adminv1.RestoreBackupResponse], error) {
	reqID, err := requestID(req.Header())
	if err != nil {
		return nil, err
	}
	if len(req.Msg.GetData()) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("data is required"))
	}
	if err := a.cfg.Cluster.Restore(ctx, req.Msg.GetData()); err != nil {
		return nil, a.storeError(ctx, err)
	}
	cmd := a.command(ctx, reqID, "BackupService.RestoreBackup")
	cmd.Op = &fsmv1.Command_Touch{Touch: &fsmv1.Touch{}}
	res, err := a.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	out := &adminv1.RestoreBackupResponse{ConfigVersion: res.GetIndex()}
	// A read through a leader barrier includes the Touch, hence the epoch
	// the restore started, whichever node answers.
	if st, err := a.cfg.Store.State(ctx, true); err == nil {
		out.Epoch = st.Epoch()
	}
	a.log.WarnContext(ctx, "state restored from backup", "by", callerFrom(ctx).tokenID, "index", res.GetIndex(), "epoch", out.GetEpoch())
	return resp(out), nil
}
