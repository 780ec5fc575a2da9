package promnames_test

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/internal/promnames"
)

func TestNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "app_calls_total", Help: "h"}, []string{"outcome"}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "app_mode", Help: "h", ConstLabels: prometheus.Labels{"a": "b"}}, func() float64 { return 1 }),
		prometheus.NewHistogram(prometheus.HistogramOpts{Name: "app_seconds", Help: "h"}),
		prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total", Help: "h"}),
	)
	for _, tc := range []struct {
		name, prefix string
		want         []string
	}{
		{name: "by prefix, vectors without series included", prefix: "app_", want: []string{"app_calls_total", "app_mode", "app_seconds"}},
		{name: "every name", prefix: "", want: []string{"app_calls_total", "app_mode", "app_seconds", "other_total"}},
		{name: "none", prefix: "nope_", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := promnames.Names(reg, tc.prefix); !slices.Equal(got, tc.want) {
				t.Errorf("Names(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		})
	}
}
