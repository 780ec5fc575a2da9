package seal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
)

func FuzzOpen(f *testing.F) {
	s, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		f.Fatal(err)
	}
	valid, err := s.Seal([]byte("fuzz seed"), []byte("aad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, []byte("aad"))
	f.Add(valid[:seal.Overhead], []byte(nil))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{seal.Version}, []byte("aad"))
	f.Add(bytes.Repeat([]byte{0}, seal.Overhead), []byte(nil))
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		pt, err := s.Open(sealed, aad)
		if err != nil {
			if pt != nil {
				t.Fatalf("plaintext returned with error %v", err)
			}
			if !errors.Is(err, seal.ErrCorrupt) && !errors.Is(err, seal.ErrWrongKey) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if len(pt) != len(sealed)-seal.Overhead {
			t.Fatalf("plaintext length %d for sealed length %d", len(pt), len(sealed))
		}
	})
}
