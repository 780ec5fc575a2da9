package gwctl

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestParseSunset(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-03-31T12:00:00Z", want: time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)},
		{in: "2026-03-31T12:00:00+02:00", want: time.Date(2026, 3, 31, 10, 0, 0, 0, time.UTC)},
		{in: "2026-03-31", want: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)},
		{in: "30d", want: now.Add(30 * 24 * time.Hour)},
		{in: "1d12h", want: now.Add(36 * time.Hour)},
		{in: "0s", wantErr: true},
		{in: "tomorrow", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSunset(tt.in, now)
			if (err != nil) != tt.wantErr || !tt.wantErr && !got.Equal(tt.want) {
				t.Fatalf("parseSunset(%q) = %v, %v; want %v (error %t)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestVersionRows(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	pin := &configv1.ToolPin{
		ActiveVersion: 2,
		Versions: []*configv1.ToolVersion{
			{Version: 1, DeprecateTime: ts(-48 * time.Hour), SunsetTime: ts(-time.Hour)},
			{Version: 2},
			{Version: 3, DeprecateTime: ts(-time.Hour), SunsetTime: ts(24 * time.Hour)},
		},
		Assignments: []*configv1.ToolAssignment{{Version: 3, Team: "canary"}, {Version: 3, Agent: "bot"}},
	}
	rows := versionRows(pin, now)
	want := []struct{ def, assigned, deprecation string }{
		{"", "", "retired 2026-01-01T23:00:00Z"},
		{"*", "", "-"},
		{"", "team canary, agent bot", "sunset 2026-01-03T00:00:00Z"},
	}
	for i, w := range want {
		if r := rows[i]; r[1] != w.def || r[2] != w.assigned || r[6] != w.deprecation {
			t.Errorf("row %d = %q, want default %q, assigned %q, deprecation %q", i, r, w.def, w.assigned, w.deprecation)
		}
	}
}
