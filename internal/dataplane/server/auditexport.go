package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditotlp"
)

// exportMetrics are the OTLP audit export's counters, read at scrape time.
func exportMetrics(e *auditotlp.Exporter) []prometheus.Collector {
	counter := func(result string, v func(auditotlp.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "portcullis_dataplane_audit_otlp_records_total",
			Help:        "Audit records handed to the OTLP export, by result (exported; dropped: the queue was full; failed: the collector refused or did not answer).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 { return float64(v(e.Stats())) })
	}
	return []prometheus.Collector{
		counter("exported", func(s auditotlp.Stats) uint64 { return s.Exported }),
		counter("dropped", func(s auditotlp.Stats) uint64 { return s.Dropped }),
		counter("failed", func(s auditotlp.Stats) uint64 { return s.Failed }),
	}
}
