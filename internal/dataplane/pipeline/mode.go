package pipeline

import configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"

// ModeName is the lower-case name of a serving mode ("degraded"), as
// audit records, metrics labels and /readyz spell it.
func ModeName(m configsyncv1.Mode) string {
	switch m {
	case configsyncv1.Mode_MODE_NORMAL:
		return "normal"
	case configsyncv1.Mode_MODE_DEGRADED:
		return "degraded"
	case configsyncv1.Mode_MODE_STALE:
		return "stale"
	case configsyncv1.Mode_MODE_STARTING:
		return "starting"
	}
	return "unspecified"
}
