// Package seal implements envelope encryption with the cluster
// key-encryption key (KEK).
//
// Every control-plane node is given the same 32-byte KEK by the operator.
// Secrets, the cluster CA private key and signing keys are stored in
// replicated state sealed with it. A sealed value has the layout
//
//	version (1 byte) | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag
//
// and is produced with AES-256-GCM. The version byte and key id are bound
// into the GCM additional data together with the caller's AAD, so they
// cannot be altered without detection.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the length in bytes of a key-encryption key.
const KeySize = 32

// Version is the format version written as the first byte of sealed values.
const Version byte = 1

const (
	keyIDSize  = 8
	nonceSize  = 12
	tagSize    = 16
	headerSize = 1 + keyIDSize + nonceSize
	// Overhead is the number of bytes Seal adds to a plaintext.
	Overhead = headerSize + tagSize
)

// Domain-separation labels. The AES key and every Derive output are
// independent HKDF expansions of the KEK, so no derived subkey equals the
// key that encrypts sealed values.
const (
	keyIDLabel   = "portcullis-kek-id"
	sealKeyInfo  = "portcullis/seal/aes-256-gcm/v1"
	derivePrefix = "portcullis/derive/v1/"
)

// Sentinel errors returned by this package; callers branch on them with
// errors.Is.
var (
	// ErrInvalidKey reports a key of the wrong length or encoding.
	ErrInvalidKey = errors.New("invalid key-encryption key")
	// ErrWrongKey reports a sealed value produced under a different KEK.
	ErrWrongKey = errors.New("sealed with a different key-encryption key")
	// ErrCorrupt reports a sealed value that is truncated, has an unknown
	// version, or fails authentication (tampered data or wrong AAD).
	ErrCorrupt = errors.New("sealed value is corrupt or was tampered with")
)

// Sealer seals and opens values with one KEK. It is safe for concurrent use.
type Sealer struct {
	kek   []byte
	keyID [keyIDSize]byte
	aead  cipher.AEAD
}

// New returns a Sealer for a 32-byte key-encryption key. The key is copied.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d", ErrInvalidKey, len(key), KeySize)
	}
	kek := bytes.Clone(key)
	aesKey, err := hkdf.Key(sha256.New, kek, nil, sealKeyInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, fmt.Errorf("create AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("create GCM: %w", err)
	}
	s := &Sealer{kek: kek, aead: aead}
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(kek)
	copy(s.keyID[:], h.Sum(nil))
	return s, nil
}

// KeyID returns the hex form of the first 8 bytes of
// SHA-256("portcullis-kek-id" || key). It identifies the KEK without
// revealing it and is safe to log.
func (s *Sealer) KeyID() string {
	return hex.EncodeToString(s.keyID[:])
}

// Seal encrypts plaintext, binding it to aad, and returns the sealed value
// in the format described in the package documentation. The same aad must be
// passed to Open.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = Version
	copy(out[1:], s.keyID[:])
	nonce := out[1+keyIDSize : headerSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generate nonce: %w", err)
	}
	return s.aead.Seal(out, nonce, plaintext, additionalData(out[:1+keyIDSize], aad)), nil
}

// Open authenticates and decrypts a value produced by Seal with the same aad.
// It returns ErrWrongKey when the value was sealed under another KEK and
// ErrCorrupt when it is truncated, has an unknown version or fails
// authentication.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the minimum %d", ErrCorrupt, len(sealed), Overhead)
	}
	if sealed[0] != Version {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, sealed[0])
	}
	if !bytes.Equal(sealed[1:1+keyIDSize], s.keyID[:]) {
		return nil, fmt.Errorf("%w: value key id %x, this node's key id %s",
			ErrWrongKey, sealed[1:1+keyIDSize], s.KeyID())
	}
	nonce := sealed[1+keyIDSize : headerSize]
	plaintext, err := s.aead.Open(nil, nonce, sealed[headerSize:], additionalData(sealed[:1+keyIDSize], aad))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (wrong associated data or modified ciphertext)", ErrCorrupt)
	}
	return plaintext, nil
}

// Derive returns an n-byte subkey of the KEK for purpose (for example
// "node-forward-auth") using HKDF-SHA256. The result is deterministic for a
// given KEK and purpose, and distinct purposes yield independent keys. It
// panics if n is not between 1 and 8160 (255 SHA-256 blocks), which is a
// programming error.
func (s *Sealer) Derive(purpose string, n int) []byte {
	if n <= 0 {
		panic(fmt.Sprintf("seal: Derive length %d must be positive", n))
	}
	k, err := hkdf.Key(sha256.New, s.kek, nil, derivePrefix+purpose, n)
	if err != nil {
		panic(fmt.Sprintf("seal: derive %q: %v", purpose, err))
	}
	return k
}

// additionalData returns header || aad in a fresh slice.
func additionalData(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	ad = append(ad, header...)
	return append(ad, aad...)
}
