package etcdstore

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
)

// A node's checkpoint is two files in its directory:
//
//	state.ckpt     magic "PCETCD01", a uint32 (little-endian) length and a
//	               JSON ckptHeader, then the state stream (state.WriteTo):
//	               the state after every log entry up to header.Revision
//	position.json  a ckptHeader whose Position may run past the state
//	               file's Revision over entries that changed no state
//	               (audit uploads), so the position moves without
//	               rewriting the state
//
// Both are written to a temporary file, synced and renamed. A position
// file that names another state revision than the state file's is stale
// (a crash between the two writes) and ignored.
const (
	ckptMagic    = "PCETCD01"
	stateFile    = "state.ckpt"
	positionFile = "position.json"
	// maxCkptHeader bounds the header read back.
	maxCkptHeader = 64 << 10
)

// ckptHeader ties a checkpoint to the etcd cluster and prefix it came
// from.
type ckptHeader struct {
	Prefix        string `json:"prefix"`
	EtcdClusterID uint64 `json:"etcd_cluster_id"`
	// Revision is the state file's revision.
	Revision int64 `json:"revision"`
	// Position (position file only) is the revision up to which every
	// entry is applied and durable.
	Position int64 `json:"position,omitempty"`
}

// checkpoint is where the files on disk stand.
type checkpoint struct {
	Revision int64 // of the state file
	Position int64 // durable position (≥ Revision)
}

// loadCheckpoint reads the checkpoint in dir; st is nil when there is
// none. A checkpoint from another etcd cluster or prefix is an error.
func loadCheckpoint(dir, prefix string, clusterID uint64) (checkpoint, *state.State, error) {
	f, err := os.Open(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint{}, nil, nil
	}
	if err != nil {
		return checkpoint{}, nil, fmt.Errorf("read the checkpoint: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var pre [len(ckptMagic) + 4]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil || string(pre[:len(ckptMagic)]) != ckptMagic {
		return checkpoint{}, nil, fmt.Errorf("%s is not a checkpoint of this version; start the node with an empty --data-dir", f.Name())
	}
	hlen := binary.LittleEndian.Uint32(pre[len(ckptMagic):])
	if hlen > maxCkptHeader {
		return checkpoint{}, nil, fmt.Errorf("%s: header too large", f.Name())
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return checkpoint{}, nil, fmt.Errorf("read the checkpoint: %w", err)
	}
	var h ckptHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return checkpoint{}, nil, fmt.Errorf("read the checkpoint: header: %w", err)
	}
	if h.Prefix != prefix || h.EtcdClusterID != clusterID {
		return checkpoint{}, nil, fmt.Errorf("the checkpoint in %s belongs to etcd cluster %x prefix %q, not to etcd cluster %x prefix %q: give this node an empty --data-dir", dir, h.EtcdClusterID, h.Prefix, clusterID, prefix)
	}
	st, err := state.Read(br)
	if err != nil {
		return checkpoint{}, nil, fmt.Errorf("read the checkpoint: %w", err)
	}
	ck := checkpoint{Revision: h.Revision, Position: h.Revision}
	if b, err := os.ReadFile(filepath.Join(dir, positionFile)); err == nil {
		var p ckptHeader
		if json.Unmarshal(b, &p) == nil && p.Prefix == prefix && p.EtcdClusterID == clusterID && p.Revision == h.Revision && p.Position > h.Revision {
			ck.Position = p.Position
		}
	}
	return ck, st, nil
}

// writeStateFile writes st as the state file at revision rev.
func writeStateFile(dir string, h ckptHeader, st *state.State) error {
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, stateFile), func(w io.Writer) error {
		var pre [len(ckptMagic) + 4]byte
		copy(pre[:], ckptMagic)
		binary.LittleEndian.PutUint32(pre[len(ckptMagic):], uint32(len(hb)))
		if _, err := w.Write(pre[:]); err != nil {
			return err
		}
		if _, err := w.Write(hb); err != nil {
			return err
		}
		_, err := st.WriteTo(w)
		return err
	})
}

// writePositionFile writes the position file.
func writePositionFile(dir string, h ckptHeader) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, positionFile), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// writeAtomic writes path through a synced temporary file and a rename.
func writeAtomic(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := write(bw); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
