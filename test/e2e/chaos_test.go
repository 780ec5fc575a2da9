package e2e

import (
	"testing"

	"github.com/portcullis-gw/portcullis/test/chaos/drills"
)

// The fault drills of "make chaos" (test/chaos) that fit in CI, at CI
// size: the same code, shorter load phases. Each logs its verdict line and
// fails on any invariant that did not hold.

func TestChaosAllControlPlanesDown(t *testing.T) { runDrill(t, "all-control-planes-down") }

func TestChaosUpstreamHang(t *testing.T) { runDrill(t, "upstream-hang") }

func TestChaosDataplaneKill(t *testing.T) { runDrill(t, "dataplane-kill") }

func runDrill(t *testing.T, name string) {
	d, ok := drills.Lookup(name)
	if !ok {
		t.Fatalf("no drill %q", name)
	}
	v := drills.Run(t, d, drills.CI)
	t.Log(v.Line(!t.Failed()))
}
