package pki_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
)

func TestFingerprint(t *testing.T) {
	der := []byte("not really DER")
	sum := sha256.Sum256(der)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := pki.Fingerprint(der); got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
}

func TestParseFingerprint(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	hx := hex.EncodeToString(sum[:])
	var pairs []string
	for i := 0; i < len(hx); i += 2 {
		pairs = append(pairs, hx[i:i+2])
	}
	colon := strings.Join(pairs, ":")
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "prefixed", in: "sha256:" + hx},
		{name: "plain", in: hx},
		{name: "upper", in: strings.ToUpper(hx)},
		{name: "upper prefix", in: "SHA256:" + strings.ToUpper(hx)},
		{name: "colon separated", in: strings.ToUpper(colon)},
		{name: "prefixed colon separated", in: "sha256:" + colon},
		{name: "whitespace", in: "  sha256:" + hx + "\n"},
		{name: "empty", in: "", wantErr: true},
		{name: "too short", in: hx[:62], wantErr: true},
		{name: "too long", in: hx + "00", wantErr: true},
		{name: "not hex", in: strings.Repeat("zz", 32), wantErr: true},
		{name: "odd colon groups", in: "a" + colon[1:] + "0", wantErr: true},
		{name: "sha1 length", in: hx[:40], wantErr: true},
		{name: "other algorithm prefix", in: "sha1:" + hx, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.ParseFingerprint(tt.in)
			if tt.wantErr {
				if !errors.Is(err, pki.ErrInvalidFingerprint) {
					t.Fatalf("ParseFingerprint error = %v, want ErrInvalidFingerprint", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFingerprint: %v", err)
			}
			if !bytes.Equal(got, sum[:]) {
				t.Errorf("ParseFingerprint = %x, want %x", got, sum)
			}
		})
	}
}

func TestCAFingerprintRoundTrip(t *testing.T) {
	ca, _ := newCA(t, "A")
	b, err := pki.ParseFingerprint(ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ca.Cert.Raw)
	if !bytes.Equal(b, sum[:]) {
		t.Errorf("CA fingerprint does not round trip")
	}
}
