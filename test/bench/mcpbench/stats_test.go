package main

import "testing"

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		name        string
		in          []float64
		med, lo, hi float64
		n           int
	}{
		{name: "none"},
		{name: "one", in: []float64{3}, med: 3, lo: 3, hi: 3, n: 1},
		{name: "odd, unsorted", in: []float64{5, 1, 3}, med: 3, lo: 1, hi: 5, n: 3},
		{name: "even: mean of the middle two", in: []float64{4, 1, 2, 10}, med: 3, lo: 1, hi: 10, n: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			got := spreadOf(tt.in)
			if got.med != tt.med || got.lo != tt.lo || got.hi != tt.hi || got.n != tt.n {
				t.Errorf("spreadOf(%v) = %+v, want med %v lo %v hi %v n %d", tt.in, got, tt.med, tt.lo, tt.hi, tt.n)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("spreadOf reordered its input: %v", tt.in)
				}
			}
		})
	}
}

func TestSpreadText(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "ms, one run", got: spreadOf([]float64{1.5e6}).msText(), want: "1.500 ms"},
		{name: "ms, three runs", got: spreadOf([]float64{1.5e6, 1.2e6, 2e6}).msText(), want: "1.500 ms (1.200–2.000)"},
		{name: "added, below zero", got: spreadOf([]float64{-0.1e6, 0.2e6, 0.3e6}).signedMsText(), want: "+0.200 ms (−0.100–+0.300)"},
		{name: "µs", got: spreadOf([]float64{230e3, 250e3, 220e3}).usText(), want: "230 µs (220–250)"},
		{name: "none", got: spreadOf(nil).usText(), want: "n/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
