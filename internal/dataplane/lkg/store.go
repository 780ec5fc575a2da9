// Package lkg keeps the data plane's last-known-good snapshot on disk, so a
// data plane that restarts while no control plane is reachable can serve
// from the configuration it last applied.
//
// The snapshot carries secrets, so it is stored encrypted (AES-256-GCM)
// under a key derived from the join credential (joincred.StorageKey):
// whoever can read the file but does not hold the credential learns
// nothing, and a file written under another credential fails to load.
// Writes are atomic: a crash leaves either the old file or the new one.
package lkg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// FileName is the snapshot's file name inside the store's directory.
const FileName = "snapshot.lkg"

// tmpPrefix starts the names of files being written; Open removes
// leftovers, Load never reads them.
const tmpPrefix = FileName + ".tmp-"

var (
	// ErrNotFound reports that no snapshot was saved yet.
	ErrNotFound = errors.New("no last-known-good snapshot")
	// ErrCorrupt reports a snapshot file that cannot be used. It is always
	// wrapped together with the precise cause (ErrTruncated, ErrBadMagic,
	// ErrTrailingData, ErrAuthFailed, ErrChecksum).
	ErrCorrupt = errors.New("last-known-good snapshot unusable")
)

// Store reads and writes the last-known-good snapshot in one directory. It
// is safe for concurrent use; one process should own a directory.
type Store struct {
	dir    string
	aead   cipher.AEAD
	macKey []byte
	mu     sync.Mutex // serializes Save
}

// Open returns the store in dir, creating dir (mode 0700) if needed and
// removing temporary files a crash during Save left behind. key is the
// 32-byte joincred.StorageKey.
func Open(dir string, key []byte) (*Store, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("open last-known-good store: key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("open last-known-good store: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("open last-known-good store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open last-known-good store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open last-known-good store: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, "portcullis/lkg-checksum/v1", 32)
	if err != nil {
		return nil, fmt.Errorf("open last-known-good store: %w", err)
	}
	return &Store{dir: dir, aead: aead, macKey: macKey}, nil
}

// Path is the snapshot file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Save replaces the stored snapshot with snapshot at version. It returns
// once the new file and its directory entry are on disk.
func (s *Store) Save(version uint64, snapshot []byte) error {
	if version == 0 {
		return errors.New("save last-known-good snapshot: version 0 is not a snapshot version")
	}
	if len(snapshot) > MaxSnapshotSize {
		return fmt.Errorf("save last-known-good snapshot: %d bytes exceeds the %d-byte limit", len(snapshot), MaxSnapshotSize)
	}
	h := header{version: version, length: uint64(len(snapshot)), sum: checksum(s.macKey, snapshot)}
	if _, err := io.ReadFull(rand.Reader, h.nonce[:]); err != nil {
		return fmt.Errorf("save last-known-good snapshot: nonce: %w", err)
	}
	image := seal(s.aead, h, snapshot)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeAtomic(image); err != nil {
		return fmt.Errorf("save last-known-good snapshot version %d: %w", version, err)
	}
	return nil
}

// writeAtomic writes image to a temporary file (mode 0600), syncs it,
// renames it over the snapshot file and syncs the directory.
func (s *Store) writeAtomic(image []byte) (err error) {
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*") // created with mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(image); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, s.Path()); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Load returns the stored snapshot and its version. It returns ErrNotFound
// when none was saved, and ErrCorrupt wrapped with the cause when the file
// cannot be used; the caller then starts without a snapshot.
func (s *Store) Load() (version uint64, snapshot []byte, err error) {
	f, err := os.Open(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, ErrNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("load last-known-good snapshot: %w", err)
	}
	defer f.Close()
	// Read at most one byte past the largest valid file, so a huge file is
	// reported as trailing data without being read whole.
	b, err := io.ReadAll(io.LimitReader(f, int64(headerSize+MaxSnapshotSize+tagSize+1)))
	if err != nil {
		return 0, nil, fmt.Errorf("load last-known-good snapshot: %w", err)
	}
	version, snapshot, err = open(s.aead, s.macKey, b)
	if err != nil {
		return 0, nil, fmt.Errorf("load %s: %w", s.Path(), err)
	}
	return version, snapshot, nil
}
