// Command dataplane will run a Portcullis data plane: the stateless proxy
// that serves agents from versioned snapshots of the control plane's
// configuration. It arrives with the config-distribution work; until then
// it refuses to start rather than pretend to proxy anything.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "dataplane: not available yet: the data plane arrives with config distribution (snapshot streaming, last-known-good, degraded mode); see README.md")
	os.Exit(2)
}
