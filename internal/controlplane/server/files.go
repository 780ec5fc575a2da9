package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files in the data directory.
const (
	AdminTokenFile = "admin.token"
	tlsDir         = "tls"
	CACertFile     = "ca.crt"
	nodeCertFile   = "node.crt"
	nodeKeyFile    = "node.key"
)

// tlsMaterial is this node's certificate, key and the cluster CA, as PEM.
type tlsMaterial struct {
	caPEM, certPEM, keyPEM []byte
}

func tlsPath(dataDir, name string) string { return filepath.Join(dataDir, tlsDir, name) }

// loadTLS reads the node's TLS material; ok is false when none is there.
func loadTLS(dataDir string) (m tlsMaterial, ok bool, err error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(tlsPath(dataDir, name)) }
	if m.caPEM, err = read(CACertFile); errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	} else if err != nil {
		return m, false, fmt.Errorf("read TLS material: %w", err)
	}
	if m.certPEM, err = read(nodeCertFile); err != nil {
		return m, false, fmt.Errorf("read TLS material: %w", err)
	}
	if m.keyPEM, err = read(nodeKeyFile); err != nil {
		return m, false, fmt.Errorf("read TLS material: %w", err)
	}
	return m, true, nil
}

func saveTLS(dataDir string, m tlsMaterial) error {
	if err := os.MkdirAll(filepath.Join(dataDir, tlsDir), 0o700); err != nil {
		return fmt.Errorf("create TLS dir: %w", err)
	}
	for name, data := range map[string][]byte{CACertFile: m.caPEM, nodeCertFile: m.certPEM, nodeKeyFile: m.keyPEM} {
		if err := writeFileAtomic(tlsPath(dataDir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes data to path through a synced temporary file and a
// rename, so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
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
