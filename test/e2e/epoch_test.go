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

// TestOlderLastKnownGoodIsRefused is finding 4 of issue 11 with the real
// binaries: an operator (or an attacker with the data dir) copies an older
// snapshot.lkg back while the control plane is down, hoping the data plane
// serves an agent that was disabled since. The data plane refuses the file
// (it records the highest version it applied in its audit chain), says so
// in its log, and serves nothing until the control plane answers. A
// restore from backup on the control plane starts a new epoch, which the
// data plane takes from the stream even though the restored config
// version is older, and then serves from disk; the previous epoch's file
// is refused in turn.
func TestOlderLastKnownGoodIsRefused(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp, cp := g.dps[0], g.c.Nodes[0]
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	before, err := dp.Readyz()
	if err != nil {
		t.Fatal(err)
	}
	if before.Epoch != 1 {
		t.Fatalf("a new cluster serves epoch %d, want 1: %s", before.Epoch, before)
	}
	// What the attacker keeps: the data plane's file while ops-agent was
	// enabled. What the operator keeps: a backup from then.
	// The file is written just after the version starts serving.
	var oldLKG []byte
	harness.Await(t, 10*time.Second, "the last-known-good file", func() error {
		oldLKG, err = os.ReadFile(dp.LastKnownGoodFile())
		return err
	})
	backup := filepath.Join(t.TempDir(), "before-disable.backup")
	g.gwctl(t, "snapshot", "save", backup, "--linearizable")

	var disabled struct {
		Agent revisioned `json:"agent"`
	}
	harness.GwctlJSON(t, g.env(), &disabled, "agent", "disable", "ops-agent", "--timeout", "20s")
	applied := awaitVersion(t, dp, uint64(disabled.Agent.Meta.Revision), 20*time.Second)
	mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "unauthenticated")
	t.Logf("ops-agent disabled at version %d; dp1 serves %s", disabled.Agent.Meta.Revision, applied)

	dp.MustCleanShutdown(t)
	cp.MustCleanShutdown(t)
	if err := os.WriteFile(dp.LastKnownGoodFile(), oldLKG, 0o600); err != nil {
		t.Fatal(err)
	}
	logBefore := len(dp.Log.String())
	dp.Restart()
	dp.AwaitServing(t, harness.StartTimeout)
	st, err := dp.Readyz()
	if err != nil {
		t.Fatal(err)
	}
	if st.HTTPStatus != 503 || st.Mode != "starting" || st.Version != 0 {
		t.Errorf("started from the copied-back file: /readyz %s; want 503, starting, version 0", st)
	}
	log := dp.Log.String()[logBefore:]
	for _, want := range []string{
		"last-known-good snapshot refused",
		fmt.Sprintf("version %d (epoch 1)", before.Version),
		fmt.Sprintf("applied_version=%d", applied.Version),
		"recorded in its audit log",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the data plane's log does not say %q:\n%s", want, log)
		}
	}
	// The disabled agent is not served from the old file; nobody is.
	mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "no_config")

	// The control plane answers: the current version, ops-agent disabled.
	cp.Restart()
	cp.AwaitReady(t, harness.StartTimeout)
	awaitVersion(t, dp, applied.Version, 30*time.Second)
	mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "unauthenticated")

	// The operator restores the backup from before the disable: a new
	// epoch, whose state has ops-agent enabled again.
	var res struct {
		ConfigVersion harness.Int64 `json:"configVersion"`
		Epoch         harness.Int64 `json:"epoch"`
	}
	harness.GwctlJSON(t, g.env(), &res, "snapshot", "restore", backup, "--yes", "--timeout", "20s")
	if res.Epoch != 2 || uint64(res.ConfigVersion) <= applied.Version {
		t.Fatalf("snapshot restore: %+v; want epoch 2 and a config version past %d", res, applied.Version)
	}
	restored := dp.AwaitReadyz(t, 30*time.Second, fmt.Sprintf("serves version %d of epoch 2 in normal mode", res.ConfigVersion), func(st harness.ReadyStatus) error {
		if st.Epoch != 2 || st.Version != uint64(res.ConfigVersion) || st.Mode != "normal" {
			return fmt.Errorf("want epoch 2, version %d, normal", res.ConfigVersion)
		}
		return nil
	})
	t.Logf("after the restore dp1 serves %s", restored)
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	epoch2LKG, err := os.ReadFile(dp.LastKnownGoodFile())
	if err != nil {
		t.Fatal(err)
	}

	// With the control plane down again, the epoch-2 file serves; the
	// epoch-1 file (the one with ops-agent disabled, or the older one) is
	// refused: epochs only move forward.
	dp.MustCleanShutdown(t)
	cp.MustCleanShutdown(t)
	dp.Restart()
	dp.AwaitServing(t, harness.StartTimeout)
	if st, err := dp.Readyz(); err != nil || st.Mode != "degraded" || st.Epoch != 2 || st.Version != restored.Version {
		t.Errorf("restarted on the epoch-2 file: /readyz %s (err %v); want degraded, epoch 2, version %d", st, err, restored.Version)
	}
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("from-disk"))
	dp.MustCleanShutdown(t)
	if err := os.WriteFile(dp.LastKnownGoodFile(), oldLKG, 0o600); err != nil {
		t.Fatal(err)
	}
	logBefore = len(dp.Log.String())
	dp.Restart()
	dp.AwaitServing(t, harness.StartTimeout)
	if st, err := dp.Readyz(); err != nil || st.Mode != "starting" || st.Version != 0 {
		t.Errorf("started from an epoch-1 file after epoch 2: /readyz %s (err %v); want starting, version 0", st, err)
	}
	if log := dp.Log.String()[logBefore:]; !strings.Contains(log, "last-known-good snapshot refused") || !strings.Contains(log, "applied_epoch=2") {
		t.Errorf("the data plane's log does not refuse the epoch-1 file:\n%s", log)
	}
	dp.MustCleanShutdown(t)
	if err := os.WriteFile(dp.LastKnownGoodFile(), epoch2LKG, 0o600); err != nil {
		t.Fatal(err)
	}

	// Back online, the data plane's chain, configuration records included,
	// reaches the control plane and verifies.
	cp.Restart()
	cp.AwaitReady(t, harness.StartTimeout)
	dp.Restart()
	awaitVersion(t, dp, restored.Version, 30*time.Second)
	recs, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	var marks []string
	for _, r := range recs {
		if r.Method == "config/apply" {
			marks = append(marks, fmt.Sprint(r.SnapshotVersion))
		}
	}
	t.Logf("configuration records in dp1's audit log, by version: %s", strings.Join(marks, ", "))
	harness.Await(t, 30*time.Second, "every local record uploaded", func() error {
		if n := len(queryAll(t, g.env(), "--dataplane", "dp1")); n < len(recs) {
			return fmt.Errorf("%d of %d records uploaded", n, len(recs))
		}
		return nil
	})
	g.gwctl(t, "audit", "verify")
	dp.MustCleanShutdown(t)
	g.c.MustCleanShutdown(t)
}
