package statetest_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
)

// TestDiff checks that Diff notices each kind of difference, so tests that
// rely on an empty Diff can fail.
func TestDiff(t *testing.T) {
	steps := statetest.Script()
	keys := statetest.DedupKeys(steps)
	full := statetest.Run(t, state.New(), 1, steps)
	tests := []struct {
		name string
		a, b *state.State
		want []string
	}{
		{name: "equal", a: full, b: statetest.Restore(t, statetest.Snapshot(t, full))},
		{name: "empty and bootstrapped", a: state.New(), b: statetest.Run(t, state.New(), 1, steps[:1]),
			want: []string{"Index:", "ConfigVersion:", "ConfigTime:", "Identity:", "node:", "admin_token:", "AdminEvents:", "Dedup(node:n1, bootstrap-"}},
		{name: "one command apart", a: statetest.Run(t, state.New(), 1, steps[:5]), b: statetest.Run(t, state.New(), 1, steps[:6]),
			want: []string{"Index:", "identity_source:", "AdminEvents:", "Dedup(" + statetest.BootToken + ", r-idp)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := statetest.Diff(tt.a, tt.b, keys)
			got := strings.Join(d, "\n")
			if len(tt.want) == 0 && len(d) > 0 {
				t.Fatalf("Diff of equal states:\n%s", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Diff does not report %q:\n%s", w, got)
				}
			}
		})
	}
}
