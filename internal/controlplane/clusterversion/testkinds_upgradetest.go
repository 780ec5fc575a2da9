//go:build upgradetest

package clusterversion

import "google.golang.org/protobuf/reflect/protoreflect"

// ProbeKind is the synthetic resource kind a binary built with -tags
// upgradetest supports, one version above every release version, so that
// the rolling-upgrade test (test/upgrade) can show the version gate at
// work.
const ProbeKind = "upgrade_probe"

// testKinds adds the probe kind at the version after the release tables'.
func testKinds() map[protoreflect.Name]Version {
	return map[protoreflect.Name]Version{ProbeKind: release + 1}
}
