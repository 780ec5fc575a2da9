package egress_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/egress"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

func TestPolicyOnTheWire(t *testing.T) {
	many := make([]string, egress.MaxPrefixes+1)
	for i := range many {
		many[i] = fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
	}
	tests := []struct {
		name    string
		in      *snapshotv1.EgressPolicy
		want    egress.Policy
		wantErr string
	}{
		{name: "absent: the default policy", in: nil, want: egress.Policy{}},
		{name: "all fields", in: &snapshotv1.EgressPolicy{AllowLinkLocal: true, Allow: []string{"169.254.10.0/24"}, Deny: []string{"10.0.0.0/8", "fd00::/8"}},
			want: egress.Policy{AllowLinkLocal: true, Allow: prefixes("169.254.10.0/24"), Deny: prefixes("10.0.0.0/8", "fd00::/8")}},
		{name: "host bits are masked", in: &snapshotv1.EgressPolicy{Deny: []string{"10.1.2.3/8"}}, want: egress.Policy{Deny: prefixes("10.0.0.0/8")}},
		{name: "not a prefix", in: &snapshotv1.EgressPolicy{Allow: []string{"10.0.0.1"}}, wantErr: `allow prefix "10.0.0.1"`},
		{name: "garbage", in: &snapshotv1.EgressPolicy{Deny: []string{"x/33"}}, wantErr: `deny prefix "x/33"`},
		{name: "too many", in: &snapshotv1.EgressPolicy{Deny: many}, wantErr: "at most 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := egress.FromProto(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromProto = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.AllowLinkLocal != tt.want.AllowLinkLocal || !slices.Equal(got.Allow, tt.want.Allow) || !slices.Equal(got.Deny, tt.want.Deny) {
				t.Fatalf("FromProto = %+v, want %+v", got, tt.want)
			}
			back, err := egress.FromProto(got.Proto())
			if err != nil || back.AllowLinkLocal != got.AllowLinkLocal || !slices.Equal(back.Allow, got.Allow) || !slices.Equal(back.Deny, got.Deny) {
				t.Fatalf("round trip: %+v, %v; want %+v", back, err, got)
			}
		})
	}
}
