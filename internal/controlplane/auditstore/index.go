package auditstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A sealed segment has an index file beside it (00000000000000000001.idx),
// written atomically when the segment is sealed, so that a node's start
// reads one small file per sealed segment instead of its records:
//
//	magic   8 bytes "PCAIDX01"
//	digest  32 bytes: SHA-256 of body
//	body    JSON: segIndex
//
// An index that is missing, does not decode, fails its digest or does not
// match its segment's name and size is rebuilt from the segment.
const (
	indexMagic  = "PCAIDX01"
	indexSuffix = ".idx"
	// maxIndexBytes bounds an index file (a summary per data plane: about
	// 200 bytes each).
	maxIndexBytes = 64 << 20
	// maxHeadBytes bounds a chain head's hash.
	maxHeadBytes = 64
)

// segIndex is the summary of a sealed segment.
type segIndex struct {
	ID      uint64    `json:"id"`
	Size    int64     `json:"size"`
	SHA256  []byte    `json:"sha256"`
	Records uint64    `json:"records"`
	MinTime time.Time `json:"min_time"`
	MaxTime time.Time `json:"max_time"`
	// Chains: per data plane, the lowest and highest sequence of its
	// records in the segment, and the hash and snapshot_version of the
	// record with the highest.
	Chains map[string]chainIndex `json:"chains"`
}

type chainIndex struct {
	First   uint64 `json:"first"`
	Last    uint64 `json:"last"`
	Head    []byte `json:"head"`
	Version uint64 `json:"version,omitempty"`
}

func indexPath(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", id, indexSuffix))
}

// encodeIndex returns seg's index file.
func encodeIndex(seg *segment) ([]byte, error) {
	x := segIndex{ID: seg.id, Size: seg.size, SHA256: seg.sum, Records: seg.records, MinTime: seg.minTime, MaxTime: seg.maxTime,
		Chains: make(map[string]chainIndex, len(seg.chains))}
	for chain, c := range seg.chains {
		x.Chains[chain] = chainIndex{First: c.min, Last: c.max, Head: c.head, Version: c.version}
	}
	body, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("encode audit segment index: %w", err)
	}
	sum := sha256.Sum256(body)
	out := make([]byte, 0, len(indexMagic)+len(sum)+len(body))
	out = append(append(append(out, indexMagic...), sum[:]...), body...)
	return out, nil
}

// decodeIndex decodes and checks an index file: its magic, its digest and
// that its fields are sane. It does not compare it with the segment.
func decodeIndex(b []byte) (segIndex, error) {
	var x segIndex
	if len(b) > maxIndexBytes {
		return x, errors.New("index file too large")
	}
	if len(b) < len(indexMagic)+sha256.Size || string(b[:len(indexMagic)]) != indexMagic {
		return x, errors.New("not an audit segment index")
	}
	body := b[len(indexMagic)+sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[len(indexMagic):len(indexMagic)+sha256.Size]) {
		return x, errors.New("index digest does not match")
	}
	if err := json.Unmarshal(body, &x); err != nil {
		return x, fmt.Errorf("index does not decode: %w", err)
	}
	if len(x.SHA256) != sha256.Size || x.Size < 0 {
		return x, errors.New("index has no segment hash or a negative size")
	}
	for chain, c := range x.Chains {
		if chain == "" || c.First == 0 || c.First > c.Last || len(c.Head) > maxHeadBytes {
			return x, fmt.Errorf("index entry of chain %q is not sane", chain)
		}
	}
	return x, nil
}

// writeIndex writes seg's index file atomically.
func writeIndex(dir string, seg *segment) error {
	b, err := encodeIndex(seg)
	if err != nil {
		return err
	}
	return writeFileAtomic(indexPath(dir, seg.id), b)
}

// writeFileAtomic writes b to path through a synced temporary file and a
// rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// loadSealed fills seg, a segment before the last, from its index file,
// or from its records when the index is missing or does not match (and
// then writes the index again).
func (s *Store) loadSealed(seg *segment) error {
	st, err := os.Stat(seg.path)
	if err != nil {
		return fmt.Errorf("stat audit segment: %w", err)
	}
	b, err := readBounded(indexPath(s.opts.Dir, seg.id), maxIndexBytes)
	var x segIndex
	if err == nil {
		x, err = decodeIndex(b)
	}
	if err == nil && (x.ID != seg.id || x.Size != st.Size()) {
		err = fmt.Errorf("the index is of segment %d with %d bytes, the segment has %d", x.ID, x.Size, st.Size())
	}
	if err == nil {
		seg.size, seg.sum, seg.records, seg.minTime, seg.maxTime, seg.sealed = x.Size, x.SHA256, x.Records, x.MinTime, x.MaxTime, true
		seg.chains = make(map[string]*seqRange, len(x.Chains))
		for chain, c := range x.Chains {
			seg.chains[chain] = &seqRange{min: c.First, max: c.Last, head: c.Head, version: c.Version}
		}
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		s.log.Info("rebuilding a sealed audit segment's index from its records (none yet: a store written by an older version, or a crash while sealing)", "segment", seg.path)
	} else {
		s.log.Warn("rebuilding a sealed audit segment's damaged index from its records", "segment", seg.path, "err", err)
	}
	_, h, stop, err := scanFile(seg)
	if err != nil {
		return err
	}
	if !errors.Is(stop, io.EOF) {
		s.log.Error("audit segment is damaged; 'gwctl audit verify' will report it", "segment", seg.path, "err", stop)
		if h, err = hashFile(seg.path, st.Size()); err != nil {
			return err
		}
	}
	seg.size, seg.sum, seg.sealed = st.Size(), h.Sum(nil), true
	if err := writeIndex(s.opts.Dir, seg); err != nil {
		s.log.Error("could not write an audit segment's index; the next start rebuilds it", "segment", seg.path, "err", err)
	}
	return nil
}

// readBounded reads the file at path, refusing one larger than limit.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), limit)
	}
	return b, nil
}

// removeStray removes what an interrupted write or fetch left behind:
// temporary files, and index files whose segment is gone.
func removeStray(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list audit store: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		stray := strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, fetchSuffix)
		if strings.HasSuffix(name, indexSuffix) {
			_, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(name, indexSuffix)+segmentSuffix))
			stray = errors.Is(err, os.ErrNotExist)
		}
		if stray {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		}
	}
	return nil
}
