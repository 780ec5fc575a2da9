package main

import (
	"testing"
	"time"
)

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{name: "three fields", in: "137211282 541508766 512\n", want: 137211282},
		{name: "zero", in: "0 3425158 1", want: 0},
		{name: "empty", in: "", wantErr: true},
		{name: "not a number", in: "x 1 2", wantErr: true},
		{name: "negative", in: "-5 1 2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSchedstat([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseSchedstat(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
