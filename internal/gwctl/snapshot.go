package gwctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// maxBackupBytes is the API's limit on a restore request.
const maxBackupBytes = 256 << 20

func (a *app) snapshotCommand() *cobra.Command {
	cmd := group("snapshot", "Save and restore the whole replicated state")
	cmd.AddCommand(a.snapshotSave(), a.snapshotRestore())
	return cmd
}

func (a *app) snapshotSave() *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a backup of the cluster state to FILE (mode 0600: it holds sealed secrets)",
		Long: `Saves a consistent backup of the cluster's state. The file is written next to
FILE, synced and renamed into place, so FILE is either the old file or the
complete new backup. Pass --linearizable to include every acknowledged write.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				n, err := saveBackup(ctx, c, args[0])
				if err != nil {
					return err
				}
				if p.structured() {
					return p.rawJSON(fmt.Appendf(nil, `{"file":%q,"bytes":%d}`, args[0], n))
				}
				return p.linef("saved %d bytes to %s", n, args[0])
			})
		},
	}
}

// saveBackup streams a backup into file via file.tmp, fsync and rename.
func saveBackup(ctx context.Context, c *client.Client, file string) (n int64, err error) {
	tmp := file + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create backup file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	err = c.Do(ctx, client.Op{Long: true}, func(ctx context.Context, s *client.Services) error {
		// A retry starts the file over.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		n = 0
		stream, err := s.Backup.SaveBackup(ctx, connect.NewRequest(&adminv1.SaveBackupRequest{}))
		if err != nil {
			return err
		}
		defer func() { _ = stream.Close() }()
		for stream.Receive() {
			w, err := f.Write(stream.Msg().GetChunk())
			n += int64(w)
			if err != nil {
				return fmt.Errorf("write %s: %w", tmp, err)
			}
		}
		return stream.Err()
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errors.New("the server sent an empty backup")
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return 0, fmt.Errorf("rename backup into place: %w", err)
	}
	syncDir(filepath.Dir(file))
	return n, nil
}

// syncDir makes a rename durable; where directories cannot be synced the
// rename still happened, so failures are ignored.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

func (a *app) snapshotRestore() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore FILE --yes",
		Short: "Replace the cluster's whole state with a saved backup",
		Long: `Replaces the cluster's whole state (agents, upstreams, pins, policies,
secrets, tokens) with a backup from "gwctl snapshot save". The backup must
come from this cluster (same identity and key-encryption key). Writes since
the backup are lost, so --yes is required.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("snapshot restore replaces the cluster's whole state; pass --yes to confirm")
			}
			data, err := readBackup(args[0])
			if err != nil {
				return err
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				var resp *adminv1.RestoreBackupResponse
				err := c.Do(ctx, client.Op{Write: true, Long: true}, func(ctx context.Context, s *client.Services) error {
					r, err := s.Backup.RestoreBackup(ctx, connect.NewRequest(&adminv1.RestoreBackupRequest{Data: data}))
					if err != nil {
						return err
					}
					resp = r.Msg
					return nil
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				if resp.GetEpoch() == 0 {
					return p.linef("restored %s: config version %d", args[0], resp.GetConfigVersion())
				}
				return p.linef("restored %s: config version %d, epoch %d (data planes take it from the control plane, never from their last-known-good file)",
					args[0], resp.GetConfigVersion(), resp.GetEpoch())
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm replacing the whole state")
	return cmd
}

func readBackup(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBackupBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("backup %s is empty", file)
	case len(data) > maxBackupBytes:
		return nil, fmt.Errorf("backup %s is over the 256 MiB the API accepts", file)
	}
	return data, nil
}
