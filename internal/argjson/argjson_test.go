package argjson_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/argjson"
)

func TestParseNumberScaled(t *testing.T) {
	tests := []struct {
		lit          string
		shift        int
		want         int64
		exact, fits  bool
		wantRangeErr bool
	}{
		{lit: "0", want: 0, exact: true, fits: true},
		{lit: "-0.0", want: 0, exact: true, fits: true},
		{lit: "900", want: 900, exact: true, fits: true},
		{lit: "9e2", want: 900, exact: true, fits: true},
		{lit: "900.000", want: 900, exact: true, fits: true},
		{lit: "899.5", exact: false, fits: true},
		{lit: "10.5", shift: 4, want: 105000, exact: true, fits: true},
		{lit: "-922337203685477.5808", shift: 4, want: -9223372036854775808, exact: true, fits: true},
		{lit: "9223372036854775808", exact: true, fits: false},
		{lit: "1e999999999", wantRangeErr: true},
		{lit: "0e999999999", want: 0, exact: true, fits: true},
		{lit: "1e-1001", wantRangeErr: true},
	}
	for _, tt := range tests {
		n, err := argjson.ParseNumber(tt.lit)
		if tt.wantRangeErr {
			if !errors.Is(err, argjson.ErrRange) {
				t.Errorf("ParseNumber(%s) err = %v, want ErrRange", tt.lit, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseNumber(%s): %v", tt.lit, err)
			continue
		}
		v, exact, fits := n.Scaled(tt.shift)
		if exact != tt.exact || fits != tt.fits || (exact && fits && v != tt.want) {
			t.Errorf("ParseNumber(%s).Scaled(%d) = %d, %v, %v; want %d, %v, %v", tt.lit, tt.shift, v, exact, fits, tt.want, tt.exact, tt.fits)
		}
	}
	for _, bad := range []string{"", "-", ".5", "1e", "0x10", "1e+"} {
		if _, err := argjson.ParseNumber(bad); err == nil {
			t.Errorf("ParseNumber(%q) accepted", bad)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		raw     string
		wantErr string
		wantLen int
	}{
		{raw: ``, wantLen: 0},
		{raw: ` null `, wantLen: 0},
		{raw: `{"a": 1, "b": {"c": [1, 2]}}`, wantLen: 2},
		{raw: `{"a": 1, "a": 2}`, wantErr: `arguments: duplicate key "a"`},
		{raw: `[1]`, wantErr: "arguments: want object, got array"},
		{raw: `{"a": 1} {}`, wantErr: "data after the value"},
		{raw: `{"a":`, wantErr: "not valid JSON"},
	}
	for _, tt := range tests {
		got, err := argjson.Decode([]byte(tt.raw))
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Decode(%s) err = %v, want %q", tt.raw, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("Decode(%s): %v", tt.raw, err)
		case len(got) != tt.wantLen:
			t.Errorf("Decode(%s) = %v, want %d keys", tt.raw, got, tt.wantLen)
		}
	}
	got, _ := argjson.Decode([]byte(`{"n": 1.50}`))
	if got["n"] != json.Number("1.50") {
		t.Errorf("numbers are not kept as their text: %#v", got["n"])
	}
}

func TestSegmentAndTruncate(t *testing.T) {
	if got := argjson.Segment("a/b~c"); got != "a~1b~0c" {
		t.Errorf("Segment = %q", got)
	}
	long := strings.Repeat("é", 100)
	got := argjson.Segment(long)
	if len(got) > argjson.MaxSegmentBytes || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Errorf("Segment of a long key = %q (%d bytes)", got, len(got))
	}
	if got := argjson.Truncate("short", 10); got != "short" {
		t.Errorf("Truncate = %q", got)
	}
}
