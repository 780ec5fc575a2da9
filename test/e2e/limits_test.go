package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestDeepPolicyRefused replays the attack of issue 11, finding 1, against a
// three-node cluster: an operator applies Cedar policies nested 500,000 and
// 100,000 parentheses deep (the first overflowed the parser's stack inside
// the state machine and took every node down for good; the second was
// accepted and cost each node ~480 MiB), a 100,000-long "||" chain, and a
// source over the size limit. Each is refused with a message that names the
// file, the position and the limit, nothing changes, every node goes on
// answering and taking writes, and no node's peak memory grows by more than
// a few MiB.
func TestDeepPolicyRefused(t *testing.T) {
	c := harness.Cluster3(t)
	env := c.Env()
	dir := t.TempDir()
	peakBefore := peakRSS(t, c)

	var before, after any
	harness.GwctlJSON(t, env, &before, "policy", "list")
	paren := func(n int) string {
		return "permit(principal, action, resource) when { " + strings.Repeat("(", n) + "true" + strings.Repeat(")", n) + " };\n"
	}
	cases := []struct {
		file, src string
		want      []string
	}{
		{"deep.cedar", paren(500_000), []string{"deep.cedar:1:107:", "brackets nest more than 64 levels deep"}},
		{"deep100k.cedar", paren(100_000), []string{"deep100k.cedar:1:107:", "brackets nest more than 64 levels deep"}},
		{"chain.cedar", "permit(principal, action, resource) when { " + strings.Repeat("true || ", 100_000) + "true };\n",
			[]string{"chain.cedar:1:", "deeper than 1024 levels", "split it into several policies"}},
		{"huge.cedar", strings.Repeat("permit(principal, action, resource);\n", 40_000),
			[]string{"source: at most 1048576 bytes", "split the policies into several sets"}},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.file)
		writeFile(t, path, tc.src)
		r := harness.Gwctl(t, env, "policy", "apply", "-f", path, "--name", "deep")
		if r.OK() {
			t.Fatalf("gwctl policy apply %s succeeded, want a refusal", tc.file)
		}
		t.Logf("%s (%d bytes): %s", tc.file, len(tc.src), strings.TrimSpace(r.Stderr))
		for _, w := range append(tc.want, `policy set "deep" was refused`) {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: stderr %q does not contain %q", tc.file, r.Stderr, w)
			}
		}
	}
	harness.GwctlJSON(t, env, &after, "policy", "list")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("policy list changed after refused applies:\nbefore %v\nafter  %v", before, after)
	}

	// The cluster keeps serving: a write, then every node answers alone.
	good := filepath.Join(dir, "good.cedar")
	writeFile(t, good, `permit(principal in Team::"payments", action in Action::"call_tool", resource);`+"\n")
	harness.MustGwctl(t, env, "policy", "apply", "-f", good, "--name", "after-deep")
	c.AwaitOnEveryNode(t, 30*time.Second, "the policy applied after the refusals", func(_ *harness.ControlPlane, nodeEnv []string) error {
		return harness.Gwctl(t, nodeEnv, "policy", "show", "after-deep", "--timeout", "5s").Err()
	})
	for _, cp := range c.Nodes {
		if !cp.Running() {
			t.Errorf("node %s exited", cp.NodeID)
		}
	}
	if peakBefore != nil {
		t.Logf("peak RSS (KiB) before %v, after %v", peakBefore, peakRSS(t, c))
		for id, after := range peakRSS(t, c) {
			if grew := after - peakBefore[id]; grew > 64<<10 {
				t.Errorf("node %s: peak RSS grew by %d MiB while refusing, more than 64", id, grew>>10)
			}
		}
	}
	c.MustCleanShutdown(t)
}

// peakRSS returns each node's peak resident set size in KiB (VmHWM), or nil
// where /proc does not tell it.
func peakRSS(t *testing.T, c *harness.Cluster) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, cp := range c.Nodes {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cp.Daemon().Pid()) + "/status")
		if err != nil {
			return nil
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				if err != nil {
					t.Fatalf("read VmHWM of %s: %v", cp.NodeID, err)
				}
				out[cp.NodeID] = kb
			}
		}
	}
	return out
}
