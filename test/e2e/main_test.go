// Package e2e holds the end-to-end tests of Portcullis: they build the real
// controlplane, gwctl and dataplane binaries and the demo upstream once
// (TestMain), start real TLS clusters, data planes and the demo upstream on
// loopback ports, drive them with gwctl as an operator would and call the
// data planes' /mcp as an agent would.
package e2e

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/test/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, "controlplane", "gwctl", "dataplane", "demoupstream", "etcdmember", "a2aagent", "fakellm"))
}

// agentList is the output of "gwctl agent list -o json".
type agentList struct {
	Agents []struct {
		Meta struct {
			Name string `json:"name"`
		} `json:"meta"`
	} `json:"agents"`
}

// agentNames lists the agents through env and args (normally one node
// alone, so the answer is that node's local state) and returns how often
// each name appears.
func agentNames(t testing.TB, env []string, args ...string) (map[string]int, error) {
	t.Helper()
	r := harness.Gwctl(t, env, append([]string{"agent", "list", "-o", "json", "--timeout", "5s"}, args...)...)
	if err := r.Err(); err != nil {
		return nil, err
	}
	var l agentList
	if err := r.JSON(&l); err != nil {
		return nil, err
	}
	names := map[string]int{}
	for _, a := range l.Agents {
		names[a.Meta.Name]++
	}
	return names, nil
}

// withPrefix keeps the names that start with prefix.
func withPrefix(names map[string]int, prefix string) map[string]int {
	out := map[string]int{}
	for n, c := range names {
		if strings.HasPrefix(n, prefix) {
			out[n] = c
		}
	}
	return out
}

// missing lists the names of want that are not in have, sorted.
func missing(want map[string]bool, have map[string]int) []string {
	var out []string
	for n := range want {
		if have[n] == 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// duplicates lists the names that appear more than once, sorted.
func duplicates(have map[string]int) []string {
	var out []string
	for n, c := range have {
		if c > 1 {
			out = append(out, fmt.Sprintf("%s×%d", n, c))
		}
	}
	slices.Sort(out)
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// rotate returns urls rotated left by k, so that different callers try the
// nodes in different orders.
func rotate(urls []string, k int) []string {
	k %= len(urls)
	return append(slices.Clone(urls[k:]), urls[:k]...)
}

// setEnv returns env with KEY replaced (or added) by kv ("KEY=VALUE"); a kv
// of "KEY=" alone drops it.
func setEnv(env []string, kv string) []string {
	key, val, _ := strings.Cut(kv, "=")
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	if val != "" {
		out = append(out, kv)
	}
	return out
}
