package joincred_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/joincred"
)

func TestRoundTrip(t *testing.T) {
	c := joincred.Credential{Name: "dp1", Token: "pct_0123456789abcdef_secret", CAFingerprint: "sha256:ab"}
	got, err := joincred.Parse("  " + c.Encode() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Fatalf("got %+v, want %+v", got, c)
	}
	if !bytes.Equal(got.StorageKey(), c.StorageKey()) || len(c.StorageKey()) != 32 {
		t.Fatal("storage key not deterministic or wrong size")
	}
	other := c
	other.Token = "pct_0123456789abcdef_other"
	if bytes.Equal(other.StorageKey(), c.StorageKey()) {
		t.Fatal("different tokens derive the same storage key")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"empty", ""},
		{"no prefix", "abc"},
		{"bad base64", "pcj1_!!!"},
		{"not json", "pcj1_bm90IGpzb24"},
		{"missing token", joincred.Credential{Name: "dp1"}.Encode()},
		{"unknown field", "pcj1_eyJuYW1lIjoiYSIsInRva2VuIjoiYiIsIngiOjF9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := joincred.Parse(tt.in); !errors.Is(err, joincred.ErrMalformed) {
				t.Fatalf("Parse(%q) = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}
