package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// memory is a process's resident memory from /proc/<pid>/status.
type memory struct {
	rss, hwm uint64 // VmRSS (now) and VmHWM (peak), bytes
}

// withProcesses is what is measured on real processes.
type withProcesses struct {
	commands     int
	load         loadCost
	writes       cpWrites
	in           inProcess
	incremental  incremental // the data plane's apply reusing the previous version
	backupBytes  int
	restoreTime  time.Duration // encode the backup, restore it
	version      uint64        // the config version after the restore
	serveTime    time.Duration // data plane start → serving that version
	serving      memory        // the data plane, serving the large version
	updateTime   time.Duration // one policy changed → the data plane serving it
	updated      memory        // the data plane, after swapping to the next version
	controlPlane memory        // the control plane after serving the data plane
}

// measureProcesses loads the configuration into a real one-node control
// plane and measures a real data plane serving it.
//
// Loading 11,002 resources through the admin API one call at a time takes
// a Raft commit (an fsync) each. The benchmark takes the faster path an
// operator has too: it saves a backup (BackupService.SaveBackup, what
// `gwctl snapshot save` calls), applies the same commands to it in memory
// with state.Apply, the function the state machine runs on every replica,
// and restores it (BackupService.RestoreBackup, what `gwctl snapshot
// restore` calls). The control plane checks the backup on restore and
// builds the data planes' snapshot from it as from any state.
//
// The in-process measurements (measureInProcess) run on the same state,
// once it is built, so the costly build happens once.
func measureProcesses(ctx context.Context, t testing.TB, sz size, runs int) withProcesses {
	var m withProcesses
	c := harness.StartCluster(t, 1)
	cp := c.Nodes[0]
	api := c.AdminAPI(t, cp.URL)

	saved := saveBackup(ctx, t, api)
	base, err := state.Read(bytes.NewReader(saved))
	if err != nil {
		t.Fatalf("read the backup: %v", err)
	}
	cmds, err := commands(sz, bootstrapActor(t, base), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m.commands = cmds.count()
	fmt.Fprintf(os.Stderr, "scalebench: applying %d commands with state.Apply …\n", m.commands)
	st, lc, err := load(base, cmds)
	if err != nil {
		t.Fatal(err)
	}
	m.load = lc
	fmt.Fprintf(os.Stderr, "scalebench: timing one more agent and pin write …\n")
	if m.writes, err = measureWrites(st, sz, bootstrapActor(t, base), time.Now()); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "scalebench: in process: %d snapshot builds and compiles …\n", runs)
	if m.in, err = measureInProcess(st, sz, runs); err != nil {
		t.Fatal(err)
	}
	if m.incremental, err = measureIncremental(st, sz, runs); err != nil {
		t.Fatal(err)
	}

	fmt.Fprintln(os.Stderr, "scalebench: restoring the state into the control plane, starting a data plane …")
	start := time.Now()
	var backup bytes.Buffer
	if _, err := st.WriteTo(&backup); err != nil {
		t.Fatalf("write the backup: %v", err)
	}
	m.backupBytes = backup.Len()
	res, err := api.Backup.RestoreBackup(ctx, connect.NewRequest(&adminv1.RestoreBackupRequest{Data: backup.Bytes()}))
	if err != nil {
		t.Fatalf("restore the backup: %v", err)
	}
	m.restoreTime = time.Since(start)
	m.version = res.Msg.GetConfigVersion()

	jc, err := api.Dataplane.CreateJoinCredential(ctx, connect.NewRequest(&adminv1.CreateJoinCredentialRequest{Name: "scale"}))
	if err != nil {
		t.Fatalf("create a join credential: %v", err)
	}
	start = time.Now()
	dp := harness.StartDataplane(t, harness.DataplaneOptions{
		Name: "scale", ControlPlanes: []string{cp.URL}, Credential: jc.Msg.GetCredential(),
	})
	serving(t, dp, m.version)
	m.serveTime = time.Since(start)
	m.serving = readMemory(t, dp.Daemon().Pid())

	start = time.Now()
	changeOnePolicy(ctx, t, c, cp.URL, sz)
	serving(t, dp, m.version+1)
	m.updateTime = time.Since(start)
	m.updated = readMemory(t, dp.Daemon().Pid())
	m.controlPlane = readMemory(t, cp.Daemon().Pid())

	dp.MustCleanShutdown(t)
	c.MustCleanShutdown(t)
	return m
}

// serving waits until dp serves config version v (or a later one) in
// normal mode.
func serving(t testing.TB, dp *harness.Dataplane, v uint64) {
	t.Helper()
	dp.AwaitReadyz(t, 2*time.Minute, fmt.Sprintf("serving version %d", v), func(st harness.ReadyStatus) error {
		if st.Mode != "normal" || st.Version < v {
			return fmt.Errorf("not yet at version %d", v)
		}
		return nil
	})
}

func saveBackup(ctx context.Context, t testing.TB, api *harness.AdminAPI) []byte {
	t.Helper()
	stream, err := api.Backup.SaveBackup(ctx, connect.NewRequest(&adminv1.SaveBackupRequest{}))
	if err != nil {
		t.Fatalf("save a backup: %v", err)
	}
	defer stream.Close()
	var out []byte
	for stream.Receive() {
		out = append(out, stream.Msg().GetChunk()...)
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("save a backup: %v", err)
	}
	return out
}

// bootstrapActor is the cluster's bootstrap admin token, as the actor of
// the commands the benchmark adds (the admin log records it).
func bootstrapActor(t testing.TB, st *state.State) *configv1.Actor {
	t.Helper()
	var actor *configv1.Actor
	st.Each(resource.AdminToken, func(r *fsmv1.Resource) bool {
		tok := r.GetAdminToken()
		if tok.GetRole() == configv1.Role_ROLE_ADMIN && tok.GetExpireTime() == nil {
			actor = &configv1.Actor{TokenId: tok.GetMeta().GetName(), Role: configv1.Role_ROLE_ADMIN}
			return false
		}
		return true
	})
	if actor == nil {
		t.Fatal("the backup holds no bootstrap admin token")
	}
	return actor
}

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(t testing.TB, pid int) memory {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the memory of pid %d: %v", pid, err)
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.rss = kb << 10
		case "VmHWM":
			m.hwm = kb << 10
		}
	}
	return m
}
