//go:build !upgradetest

package clusterversion

import "google.golang.org/protobuf/reflect/protoreflect"

// testKinds adds nothing in a release build: the upgrade test's kind
// (Resource.upgrade_probe) is unsupported, like a kind of a future version.
func testKinds() map[protoreflect.Name]Version { return nil }
