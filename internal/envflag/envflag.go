// Package envflag lets every flag of a command also be set from the
// environment: --node-id from PREFIX_NODE_ID, and so on. A flag given on the
// command line wins over the environment.
package envflag

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Name is the environment variable for flag name under prefix.
func Name(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Apply sets every flag not given on the command line from its environment
// variable, when that is set. lookup is os.LookupEnv in production.
func Apply(fs *pflag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		v, ok := lookup(Name(prefix, f.Name))
		if !ok {
			return
		}
		if f.Value.Type() == "stringSlice" || f.Value.Type() == "stringArray" {
			for _, item := range strings.Split(v, ",") {
				if serr := fs.Set(f.Name, strings.TrimSpace(item)); serr != nil {
					err = fmt.Errorf("%s: %w", Name(prefix, f.Name), serr)
					return
				}
			}
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%s: %w", Name(prefix, f.Name), serr)
		}
	})
	return err
}

// Annotate appends "(env NAME)" to every flag's usage.
func Annotate(fs *pflag.FlagSet, prefix string) {
	fs.VisitAll(func(f *pflag.Flag) {
		f.Usage += " (env " + Name(prefix, f.Name) + ")"
	})
}
