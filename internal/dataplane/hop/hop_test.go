package hop_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
)

func TestParseAndCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		values   []string
		parseErr bool
		loop     bool
		tooLong  bool
	}{
		{name: "none"},
		{name: "other gateways", values: []string{"dp-a, dp-b", "dp-c"}},
		{name: "self in the middle", values: []string{"dp-a, self, dp-b"}, loop: true},
		{name: "self on a second line", values: []string{"dp-a", "self"}, loop: true},
		{name: "too many", values: []string{strings.Repeat("x,", hop.MaxHops) + "y"}, parseErr: true},
		{name: "just too many to extend", values: []string{strings.TrimSuffix(strings.Repeat("x,", hop.MaxHops), ",")}, tooLong: true},
		{name: "huge id", values: []string{strings.Repeat("x", 200)}, parseErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.values {
				h.Add(hop.Header, v)
			}
			chain, err := hop.Parse(h)
			if (err != nil) != tc.parseErr {
				t.Fatalf("Parse: %v, want error %v", err, tc.parseErr)
			}
			if err != nil {
				return
			}
			err = hop.Check(chain, "self")
			if tc.loop != errors.Is(err, hop.ErrLoop) || (tc.tooLong != (err != nil && !errors.Is(err, hop.ErrLoop))) {
				t.Fatalf("Check(%q) = %v, want loop %v, too long %v", chain, err, tc.loop, tc.tooLong)
			}
		})
	}
}

func TestValue(t *testing.T) {
	ctx := context.Background()
	if got := hop.Value(ctx, "dp1"); got != "dp1" {
		t.Fatalf("Value without a chain = %q", got)
	}
	ctx = hop.WithChain(ctx, []string{"dp-a", "dp-b"})
	if got := hop.Value(ctx, "dp1"); got != "dp-a, dp-b, dp1" {
		t.Fatalf("Value = %q", got)
	}
}
