package clusterpin_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/clusterpin"
)

func TestParseAcceptsEveryWrittenForm(t *testing.T) {
	fp := clusterpin.Fingerprint([]byte("a certificate"))
	want, err := clusterpin.Parse(fp)
	if err != nil || len(want) != 32 {
		t.Fatalf("Parse(%q) = %x, %v", fp, want, err)
	}
	hexPart := strings.TrimPrefix(fp, "sha256:")
	var pairs []string
	for i := 0; i < len(hexPart); i += 2 {
		pairs = append(pairs, hexPart[i:i+2])
	}
	for _, in := range []string{hexPart, strings.ToUpper(fp), " " + fp + "\n", strings.Join(pairs, ":"), "sha256:" + strings.Join(pairs, ":")} {
		got, err := clusterpin.Parse(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Parse(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "sha256:zz", hexPart[:60], "ab:c:de"} {
		if _, err := clusterpin.Parse(bad); !errors.Is(err, clusterpin.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestVerifyPinnedRefusesAnEmptyChain(t *testing.T) {
	if _, err := clusterpin.VerifyPinned(nil, make([]byte, 32)); !errors.Is(err, clusterpin.ErrUntrusted) {
		t.Fatalf("VerifyPinned(no certificates) = %v, want ErrUntrusted", err)
	}
}
