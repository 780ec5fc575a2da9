package gwctl_test

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portcullis-gw/portcullis/internal/gwctl"
)

// TestNoCommandShadowsAGlobalFlag: a local flag named like a global one
// (--ca-file, --server, ...) silently hides the global setting, so a
// command would talk to the control plane without it.
func TestNoCommandShadowsAGlobalFlag(t *testing.T) {
	root := gwctl.NewRootCommand(strings.NewReader(""), io.Discard, io.Discard)
	globals := map[string]bool{}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { globals[f.Name] = true })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if globals[f.Name] {
				t.Errorf("%s: flag --%s shadows the global --%s", c.CommandPath(), f.Name, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
