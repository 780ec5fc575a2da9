package seal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
)

func testKey(fill byte) []byte {
	return bytes.Repeat([]byte{fill}, seal.KeySize)
}

func mustNew(t *testing.T, key []byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(key)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestNewRejectsBadLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := seal.New(make([]byte, n)); !errors.Is(err, seal.ErrInvalidKey) {
			t.Errorf("New(%d bytes) error = %v, want ErrInvalidKey", n, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	s := mustNew(t, testKey(1))
	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{name: "empty", plaintext: nil, aad: nil},
		{name: "short", plaintext: []byte("hunter2"), aad: []byte("upstream/github")},
		{name: "no aad", plaintext: []byte("secret"), aad: nil},
		{name: "large", plaintext: bytes.Repeat([]byte("x"), 1<<16), aad: []byte("ca-key")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := s.Seal(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if len(sealed) != len(tt.plaintext)+seal.Overhead {
				t.Errorf("sealed length = %d, want %d", len(sealed), len(tt.plaintext)+seal.Overhead)
			}
			if sealed[0] != seal.Version {
				t.Errorf("version byte = %d, want %d", sealed[0], seal.Version)
			}
			got, err := s.Open(sealed, tt.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
		})
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	s := mustNew(t, testKey(1))
	a, err := s.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestOpenFailures(t *testing.T) {
	s := mustNew(t, testKey(1))
	other := mustNew(t, testKey(2))
	aad := []byte("secret/upstream-a")
	sealed, err := s.Seal([]byte("credential"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name   string
		opener *seal.Sealer
		sealed []byte
		aad    []byte
		want   error
	}{
		{name: "wrong aad", opener: s, sealed: sealed, aad: []byte("secret/upstream-b"), want: seal.ErrCorrupt},
		{name: "missing aad", opener: s, sealed: sealed, aad: nil, want: seal.ErrCorrupt},
		{name: "tampered nonce", opener: s, sealed: flip(10), aad: aad, want: seal.ErrCorrupt},
		{name: "tampered ciphertext", opener: s, sealed: flip(seal.Overhead - 16), aad: aad, want: seal.ErrCorrupt},
		{name: "tampered tag", opener: s, sealed: flip(len(sealed) - 1), aad: aad, want: seal.ErrCorrupt},
		{name: "tampered version", opener: s, sealed: flip(0), aad: aad, want: seal.ErrCorrupt},
		{name: "tampered key id", opener: s, sealed: flip(3), aad: aad, want: seal.ErrWrongKey},
		{name: "wrong key", opener: other, sealed: sealed, aad: aad, want: seal.ErrWrongKey},
		{name: "truncated", opener: s, sealed: sealed[:seal.Overhead-1], aad: aad, want: seal.ErrCorrupt},
		{name: "empty", opener: s, sealed: nil, aad: aad, want: seal.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opener.Open(tt.sealed, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned plaintext %q on failure", got)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	a := mustNew(t, testKey(1))
	b := mustNew(t, testKey(1))
	c := mustNew(t, testKey(2))
	if len(a.KeyID()) != 16 {
		t.Errorf("KeyID length = %d, want 16 hex chars", len(a.KeyID()))
	}
	if a.KeyID() != b.KeyID() {
		t.Errorf("same key gave different ids %s, %s", a.KeyID(), b.KeyID())
	}
	if a.KeyID() == c.KeyID() {
		t.Errorf("different keys gave the same id %s", a.KeyID())
	}
}

func TestDerive(t *testing.T) {
	a := mustNew(t, testKey(1))
	b := mustNew(t, testKey(1))
	c := mustNew(t, testKey(2))
	tests := []struct {
		name      string
		x, y      []byte
		wantEqual bool
	}{
		{name: "deterministic", x: a.Derive("node-forward-auth", 32), y: b.Derive("node-forward-auth", 32), wantEqual: true},
		{name: "purpose separated", x: a.Derive("node-forward-auth", 32), y: a.Derive("token-signing", 32), wantEqual: false},
		{name: "key separated", x: a.Derive("node-forward-auth", 32), y: c.Derive("node-forward-auth", 32), wantEqual: false},
		{name: "not the raw key", x: a.Derive("", 32), y: testKey(1), wantEqual: false},
		{name: "prefix of longer output", x: a.Derive("p", 16), y: a.Derive("p", 64)[:16], wantEqual: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bytes.Equal(tt.x, tt.y); got != tt.wantEqual {
				t.Errorf("equal = %v, want %v", got, tt.wantEqual)
			}
		})
	}
	if n := len(a.Derive("len", 48)); n != 48 {
		t.Errorf("Derive length = %d, want 48", n)
	}
}

func TestDerivePanicsOnBadLength(t *testing.T) {
	s := mustNew(t, testKey(1))
	for _, n := range []int{0, -1, 255*32 + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Derive(n=%d) did not panic", n)
				}
			}()
			s.Derive("x", n)
		}()
	}
}
