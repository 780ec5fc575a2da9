package gwctl

import "testing"

func TestAmounts(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2.50", 2_500_000, true}, {"10", 10_000_000, true}, {"0.075", 75_000, true}, {".5", 500_000, true},
		{"0.000001", 1, true}, {"0.0000001", 0, false}, {"-1", 0, false}, {"1e3", 0, false}, {"", 0, false}, {"abc", 0, false},
	} {
		got, err := parseMicros("in", tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseMicros(%q) = %d, %v; want %d ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for _, tt := range []struct {
		micros int64
		want   string
	}{{2_500_000, "2.50"}, {10_000_000, "10.00"}, {75_000, "0.075"}, {1, "0.000001"}, {0, "0.00"}} {
		if got := microsText(tt.micros); got != tt.want {
			t.Errorf("microsText(%d) = %q, want %q", tt.micros, got, tt.want)
		}
	}
	if got := costText(1_234_567_890); got != "1.2345" {
		t.Errorf("costText = %q", got)
	}
}
