package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// Sentinel errors for loading a KEK.
var (
	// ErrNoKey reports that neither a key file nor an environment value was
	// given.
	ErrNoKey = errors.New("no key-encryption key configured: pass --kek-file <path> or set PORTCULLIS_KEK")
	// ErrInsecureKeyFile reports a key file readable by group or others.
	ErrInsecureKeyFile = errors.New("key-encryption key file is accessible by group or others")
)

// maxKeyFileSize bounds how much of a key file is read; a valid key file is
// under 100 bytes.
const maxKeyFileSize = 4096

// ParseKey decodes a 32-byte key written as standard base64 (with or without
// padding) or as 64 hexadecimal characters. Surrounding whitespace is
// ignored. Errors wrap ErrInvalidKey and never contain key material.
func ParseKey(text []byte) ([]byte, error) {
	t := bytes.TrimSpace(text)
	if len(t) == 0 {
		return nil, fmt.Errorf("%w: key is empty", ErrInvalidKey)
	}
	if len(t) == 2*KeySize && isHex(t) {
		key := make([]byte, KeySize)
		if _, err := hex.Decode(key, t); err != nil {
			return nil, fmt.Errorf("%w: not valid hex", ErrInvalidKey)
		}
		return key, nil
	}
	enc := base64.StdEncoding
	if !bytes.HasSuffix(t, []byte("=")) {
		enc = base64.RawStdEncoding
	}
	key := make([]byte, enc.DecodedLen(len(t)))
	n, err := enc.Decode(key, t)
	if err != nil {
		// The base64 error text carries only an offset, but keep the message
		// fixed so nothing derived from the input leaks.
		return nil, fmt.Errorf("%w: not valid standard base64 or 64 hex characters", ErrInvalidKey)
	}
	if n != KeySize {
		return nil, fmt.Errorf("%w: decoded key is %d bytes, want %d", ErrInvalidKey, n, KeySize)
	}
	return key[:n], nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// LoadKey returns a Sealer for the KEK given by envValue (the value of
// PORTCULLIS_KEK) when it is non-empty, otherwise by the file at path (the
// --kek-file flag). A key file whose mode grants any access to group or
// others is refused with ErrInsecureKeyFile. When both are empty LoadKey
// returns ErrNoKey.
func LoadKey(path, envValue string) (*Sealer, error) {
	if envValue != "" {
		key, err := ParseKey([]byte(envValue))
		if err != nil {
			return nil, fmt.Errorf("parse PORTCULLIS_KEK: %w", err)
		}
		return New(key)
	}
	if path == "" {
		return nil, ErrNoKey
	}
	key, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return New(key)
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key-encryption key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key-encryption key file %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("key-encryption key file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read key-encryption key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: file %s is larger than %d bytes", ErrInvalidKey, path, maxKeyFileSize)
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse key-encryption key file %s: %w", path, err)
	}
	return key, nil
}

// GenerateKeyFile writes a fresh random 32-byte key, standard base64 with a
// trailing newline, to a new file at path with mode 0600. It refuses to
// overwrite an existing file; that error satisfies errors.Is(err,
// fs.ErrExist).
func GenerateKeyFile(path string) (err error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key-encryption key file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close key-encryption key file %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	text := base64.StdEncoding.EncodeToString(key) + "\n"
	if _, err := f.WriteString(text); err != nil {
		return fmt.Errorf("write key-encryption key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync key-encryption key file %s: %w", path, err)
	}
	return nil
}
