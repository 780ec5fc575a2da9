package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditotlp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/auditupload"
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

// uploadMetrics say how far the control plane's copy of the audit log is
// behind the local one, read at scrape time.
func uploadMetrics(u *auditupload.Uploader) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portcullis_dataplane_audit_upload_lag_records",
			Help: "Audit records written locally that the control plane has not acknowledged yet.",
		}, func() float64 { return float64(u.Lag()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portcullis_dataplane_audit_upload_lag_seconds",
			Help: "Seconds since the control plane last held every audit record written locally (0 when it holds them all).",
		}, func() float64 { return u.Behind(time.Now()).Seconds() }),
	}
}
