package configsync_test

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// TestRegistryQuarantined keeps each report's quarantine list, replacing
// the previous one, and bounds it.
func TestRegistryQuarantined(t *testing.T) {
	r := configsync.NewRegistry("n1", nil)
	q := &configsyncv1.QuarantinedTool{Upstream: "demo", Tool: "get_weather", Action: "demo__get_weather", LiveHash: "sha256:aa", PinnedHash: "sha256:bb"}
	r.Report(&configsyncv1.ReportRequest{Name: "dp1", Version: 3, Applied: true, ServingVersion: 3, Quarantined: []*configsyncv1.QuarantinedTool{q}})
	q.Tool = "mutated after the report"
	list := r.List()
	if len(list) != 1 || len(list[0].GetQuarantined()) != 1 || list[0].GetQuarantined()[0].GetTool() != "get_weather" {
		t.Fatalf("after a report with one quarantine: %v", list)
	}
	r.Report(&configsyncv1.ReportRequest{Name: "dp1", Version: 3, Applied: true, ServingVersion: 3})
	if got := r.List()[0].GetQuarantined(); len(got) != 0 {
		t.Fatalf("a report without quarantines left %v", got)
	}
	many := make([]*configsyncv1.QuarantinedTool, configsync.MaxQuarantined+5)
	for i := range many {
		many[i] = &configsyncv1.QuarantinedTool{Tool: "t"}
	}
	r.Report(&configsyncv1.ReportRequest{Name: "dp1", Quarantined: many})
	if got := len(r.List()[0].GetQuarantined()); got != configsync.MaxQuarantined {
		t.Fatalf("kept %d quarantines, want %d", got, configsync.MaxQuarantined)
	}
}
