// Package promnames lists the metric names a Prometheus registry
// describes, so that each plane can prove its documentation and the
// Grafana dashboard name only metrics it has (docs/metrics.md).
package promnames

import (
	"regexp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// fqName picks the name out of a Desc's String (client_golang has no
// accessor for it).
var fqName = regexp.MustCompile(`^Desc\{fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// Names returns the sorted, distinct names of the metrics reg describes,
// including vectors that have no series yet, that start with prefix.
func Names(reg *prometheus.Registry, prefix string) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	var out []string
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil || len(m[1]) < len(prefix) || m[1][:len(prefix)] != prefix {
			continue
		}
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}
