// Package upgrade holds the rolling-upgrade tests of Portcullis. They start
// real clusters and data planes on the binaries of an older commit (named in
// BASELINE, built once with git worktree and cached) or of the current code,
// keep agents and operators busy, replace each process's binary one at a
// time, and check that nothing an agent or an operator was told succeeded
// is lost, and that the version gates hold writes back until every voter
// can apply them.
package upgrade

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/test/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, "controlplane", "gwctl", "dataplane", "demoupstream"))
}

// baselineCommit reads the commit named in BASELINE: the first line that
// is neither empty nor a comment.
func baselineCommit(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "test", "upgrade", "BASELINE"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	t.Fatalf("test/upgrade/BASELINE names no commit (err %v)", sc.Err())
	return ""
}
