package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestSnapshotSaveRestore saves a backup with "gwctl snapshot save",
// deletes an agent and creates another, restores the backup with
// "snapshot restore --yes", and shows that every node is back at the
// backup's state: the deleted agent is back, the later one gone. The
// cluster takes writes afterwards.
func TestSnapshotSaveRestore(t *testing.T) {
	c := harness.Cluster3(t)
	env := c.Env()
	harness.MustGwctl(t, env, "agent", "create", "keeper")
	harness.MustGwctl(t, env, "agent", "create", "doomed")

	backup := filepath.Join(t.TempDir(), "portcullis.backup")
	harness.MustGwctl(t, env, "snapshot", "save", backup, "--linearizable")
	fi, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %d bytes, mode %v; want non-empty, 0600", fi.Size(), fi.Mode().Perm())
	}

	harness.MustGwctl(t, env, "agent", "delete", "doomed")
	harness.MustGwctl(t, env, "agent", "create", "after-backup")
	awaitAgents(t, c, "the delete and the create", map[string]bool{"keeper": true, "after-backup": true})

	r := harness.Gwctl(t, env, "snapshot", "restore", backup)
	if r.OK() || !strings.Contains(r.Stderr, "--yes") {
		t.Fatalf("snapshot restore without --yes: exit %d, stderr %q; want a failure that asks for --yes", r.Code, r.Stderr)
	}
	awaitAgents(t, c, "nothing restored without --yes", map[string]bool{"keeper": true, "after-backup": true})

	harness.MustGwctl(t, env, "snapshot", "restore", backup, "--yes")
	awaitAgents(t, c, "the backup's agents", map[string]bool{"keeper": true, "doomed": true})

	harness.MustGwctl(t, env, "agent", "create", "after-restore")
	awaitAgents(t, c, "a write after the restore", map[string]bool{"keeper": true, "doomed": true, "after-restore": true})
	c.AwaitMembers(t, c.NodeIDs(), 10*time.Second)

	c.MustCleanShutdown(t)
}

// awaitAgents waits until every node, asked alone, lists exactly want.
func awaitAgents(t *testing.T, c *harness.Cluster, what string, want map[string]bool) {
	t.Helper()
	c.AwaitOnEveryNode(t, 20*time.Second, what, func(cp *harness.ControlPlane, env []string) error {
		names, err := agentNames(t, env)
		if err != nil {
			return err
		}
		if d := duplicates(names); len(d) > 0 {
			return fmt.Errorf("agents listed more than once: %v", d)
		}
		if len(names) != len(want) || len(missing(want, names)) > 0 {
			return fmt.Errorf("agents %v, want %v", sortedKeys(names), sortedKeys(want))
		}
		return nil
	})
}
