package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// The demo upstream's read-only tool as agents call it through the gateway.
const actionWeather = "demo__get_weather"

// opsPolicy lets agents of team ops call every tool.
const opsPolicy = `permit(principal in Team::"ops", action in Action::"call_tool", resource);` + "\n"

// Pacing of the load: one read-only call every readEvery, one write every
// writeEvery (each write is a gwctl run, so a few a second at most).
const (
	readEvery  = 50 * time.Millisecond
	writeEvery = 150 * time.Millisecond
)

// TestRollingUpgradeFromBaseline starts a three-node control plane and two
// data planes on the baseline binaries (test/upgrade/BASELINE), keeps an
// agent making read-only MCP calls (tools/call of a read-only tool and
// tools/list) and an operator creating agents, and upgrades every process
// to the current build, one at a time: the control-plane followers, then
// the leader, each stopped and restarted on its data dir; then each data
// plane, taken out of the agents' rotation first as a load balancer would.
// After each step the cluster must be whole and both kinds of load must
// make progress. At the end no read-only call may have failed, and every
// write the operator was told succeeded must be on every node. A backup
// the baseline wrote early on must then restore on the upgraded cluster.
func TestRollingUpgradeFromBaseline(t *testing.T) {
	base := harness.BuildCommit(t, baselineCommit(t), "controlplane", "dataplane")
	cur := harness.BinDir(t)

	c := harness.StartClusterWith(t, harness.ClusterOptions{Nodes: 3, BinDir: base})
	env := c.Env()
	gw := func(args ...string) harness.Result {
		t.Helper()
		return harness.MustGwctl(t, env, append(args, "--timeout", "20s")...)
	}
	secret := "ups_" + fmt.Sprint(time.Now().UnixNano())
	up := harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{RequireBearer: secret})
	secretFile := filepath.Join(t.TempDir(), "upstream.secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	gw("secret", "set", "demo-token", "--from-file", secretFile)
	gw("upstream", "add", "demo", "--url", up.URL, "--bearer-secret", "demo-token")
	gw("tool", "approve", "--upstream", "demo", "--tool", "get_weather", "--class", "read-only")
	var agent struct {
		APIKey string `json:"apiKey"`
	}
	harness.GwctlJSON(t, env, &agent, "agent", "create", "reader", "--team", "ops", "--timeout", "20s")
	policyFile := filepath.Join(t.TempDir(), "ops.cedar")
	if err := os.WriteFile(policyFile, []byte(opsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	gw("policy", "apply", "-f", policyFile, "--name", "ops")

	var dps []*harness.Dataplane
	for _, name := range []string{"dp1", "dp2"} {
		var cred struct {
			Credential string `json:"credential"`
		}
		harness.GwctlJSON(t, env, &cred, "dataplane", "token", "create", name, "--timeout", "20s")
		dps = append(dps, harness.StartDataplane(t, harness.DataplaneOptions{
			Name: name, ControlPlanes: c.URLs(), Credential: cred.Credential, BinDir: base,
		}))
	}
	for _, dp := range dps {
		dp.AwaitServing(t, harness.StartTimeout)
		awaitServes(t, dp, configVersion(t, c))
	}

	l := startLoad(t, c, agent.APIKey, dps)
	l.awaitProgress(t, "on the baseline")
	// A backup written by the baseline (the state snapshot format, which
	// Raft snapshots also carry), restored at the end by the current build.
	backup := filepath.Join(t.TempDir(), "baseline.backup")
	saveStart := time.Now()
	harness.MustGwctl(t, c.Env(c.Nodes[0].URL), "snapshot", "save", backup, "--linearizable", "--timeout", "20s")
	saveEnd := time.Now()

	leader := c.Leader(t, 10*time.Second)
	order := append(c.Followers(leader), leader)
	for _, cp := range order {
		l.phase.Store("upgrading control-plane " + cp.NodeID)
		t.Logf("upgrading controlplane %s (leader: %t)", cp.NodeID, cp == leader)
		cp.RestartFrom(cur)
		cp.AwaitReady(t, harness.StartTimeout)
		c.AwaitMembers(t, c.NodeIDs(), 30*time.Second)
		l.awaitProgress(t, "with control-plane "+cp.NodeID+" upgraded")
	}
	for _, dp := range dps {
		l.phase.Store("upgrading data plane " + dp.Name)
		t.Logf("upgrading dataplane %s", dp.Name)
		l.pool.drain(dp)
		dp.RestartFrom(cur)
		dp.AwaitServing(t, harness.StartTimeout)
		awaitServes(t, dp, configVersion(t, c))
		l.pool.add(dp)
		l.awaitProgress(t, "with data plane "+dp.Name+" upgraded")
	}
	l.phase.Store("upgraded")
	l.awaitProgress(t, "after the upgrade")
	reads, writes := l.stop()

	// Zero failed read-only calls.
	perPhase := map[string]int{}
	var failed []string
	for _, r := range reads {
		perPhase[r.phase]++
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s via %s (%s): %v", r.what, r.dp, r.phase, r.err))
		}
	}
	t.Logf("%d read-only calls, by phase: %v", len(reads), perPhase)
	if len(failed) > 0 {
		t.Errorf("%d of %d read-only calls failed during the upgrade:\n  %s", len(failed), len(reads), strings.Join(failed[:min(len(failed), 20)], "\n  "))
	}

	// Zero lost acknowledged writes: each node, asked alone, holds every
	// write that was acknowledged.
	acked := map[string]bool{}
	var unacked []string
	for _, w := range writes {
		if w.res.OK() {
			acked[w.name] = true
		} else {
			unacked = append(unacked, fmt.Sprintf("%s (%s): %s", w.name, w.phase, strings.TrimSpace(w.res.Stderr)))
		}
	}
	t.Logf("%d writes: %d acknowledged, %d not", len(writes), len(acked), len(unacked))
	for _, u := range unacked {
		t.Logf("  not acknowledged (may or may not have happened): %s", u)
	}
	c.AwaitOnEveryNode(t, 30*time.Second, "every acknowledged write present", func(cp *harness.ControlPlane, env []string) error {
		names, err := agentNames(t, env)
		if err != nil {
			return err
		}
		var lost []string
		for n := range acked {
			if names[n] == 0 {
				lost = append(lost, n)
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			return fmt.Errorf("%d acknowledged writes missing: %v", len(lost), lost)
		}
		for n, count := range names {
			if count > 1 {
				t.Errorf("%s lists agent %s %d times", cp.NodeID, n, count)
			}
		}
		return nil
	})

	// The data planes serve the final state, and every node runs a binary
	// that records cluster versions.
	final := configVersion(t, c)
	for _, dp := range dps {
		awaitServes(t, dp, final)
	}
	for _, cp := range c.Nodes {
		st, err := c.Status(t, cp)
		if err != nil {
			t.Fatal(err)
		}
		if st.ClusterVersion < 1 {
			t.Errorf("%s reports cluster version %d after the upgrade", cp.NodeID, st.ClusterVersion)
		}
	}
	for _, cp := range c.Nodes {
		if s := cp.Log.String(); strings.Contains(s, "panic:") || strings.Contains(s, "stops rather than") {
			t.Errorf("controlplane %s stopped on something it could not apply (see its log)", cp.NodeID)
		}
	}

	// The upgraded cluster restores the baseline's backup: every node holds
	// the writes acknowledged before it was taken and none begun after.
	harness.MustGwctl(t, env, "snapshot", "restore", backup, "--yes", "--timeout", "60s")
	c.AwaitOnEveryNode(t, 30*time.Second, "the baseline's backup restored", func(cp *harness.ControlPlane, env []string) error {
		names, err := agentNames(t, env)
		if err != nil {
			return err
		}
		for _, w := range writes {
			switch {
			case w.res.OK() && w.res.Start.Add(w.res.Elapsed).Before(saveStart) && names[w.name] == 0:
				return fmt.Errorf("%s, acknowledged before the backup, is missing", w.name)
			case w.res.Start.After(saveEnd) && names[w.name] > 0:
				return fmt.Errorf("%s, written after the backup, is still there", w.name)
			}
		}
		return nil
	})
	for _, dp := range dps {
		awaitServes(t, dp, configVersion(t, c))
		res, err := dp.CallTool(context.Background(), agent.APIKey, actionWeather, map[string]any{"city": "after-restore"})
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			t.Errorf("dataplane %s after the restore: %v", dp.Name, err)
		}
	}
	for _, dp := range dps {
		dp.MustCleanShutdown(t)
	}
	c.MustCleanShutdown(t)
}

// configVersion is the cluster's config version now (a linearizable read).
func configVersion(t *testing.T, c *harness.Cluster) uint64 {
	t.Helper()
	var st harness.ClusterStatus
	harness.GwctlJSON(t, c.Env(), &st, "cluster", "status", "--linearizable", "--timeout", "20s")
	return uint64(st.ConfigVersion)
}

// awaitServes waits until dp serves config version v or later in normal
// mode.
func awaitServes(t *testing.T, dp *harness.Dataplane, v uint64) {
	t.Helper()
	dp.AwaitReadyz(t, 30*time.Second, fmt.Sprintf("serves config version ≥ %d in normal mode", v), func(st harness.ReadyStatus) error {
		if st.Version < v || st.Mode != "normal" || st.HTTPStatus != 200 {
			return fmt.Errorf("want version ≥ %d, mode normal, 200", v)
		}
		return nil
	})
}

// agentNames lists the agents through env (one node alone: its local
// state) and counts each name.
func agentNames(t *testing.T, env []string) (map[string]int, error) {
	t.Helper()
	r := harness.Gwctl(t, env, "agent", "list", "-o", "json", "--timeout", "10s")
	if err := r.Err(); err != nil {
		return nil, err
	}
	var out struct {
		Agents []struct {
			Meta struct {
				Name string `json:"name"`
			} `json:"meta"`
		} `json:"agents"`
	}
	if err := r.JSON(&out); err != nil {
		return nil, err
	}
	names := map[string]int{}
	for _, a := range out.Agents {
		names[a.Meta.Name]++
	}
	return names, nil
}

// pool is the agents' view of the data planes, as a load balancer keeps
// it: calls rotate over the data planes in service; drain takes one out of
// service and waits for the calls it is serving to end.
type pool struct {
	mu       sync.Mutex
	idle     *sync.Cond // signalled when a call ends
	in       []*harness.Dataplane
	inflight map[*harness.Dataplane]int
	next     int
}

func newPool(dps []*harness.Dataplane) *pool {
	p := &pool{in: slices.Clone(dps), inflight: map[*harness.Dataplane]int{}}
	p.idle = sync.NewCond(&p.mu)
	return p
}

func (p *pool) acquire() *harness.Dataplane {
	p.mu.Lock()
	defer p.mu.Unlock()
	dp := p.in[p.next%len(p.in)]
	p.next++
	p.inflight[dp]++
	return dp
}

func (p *pool) release(dp *harness.Dataplane) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight[dp]--
	p.idle.Broadcast()
}

func (p *pool) drain(dp *harness.Dataplane) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.in = slices.DeleteFunc(p.in, func(x *harness.Dataplane) bool { return x == dp })
	for p.inflight[dp] > 0 {
		p.idle.Wait()
	}
}

func (p *pool) add(dp *harness.Dataplane) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.in = append(p.in, dp)
}

// read is one read-only call of the load.
type read struct {
	what, dp, phase string
	err             error
}

// write is one agent creation of the load.
type write struct {
	name, phase string
	res         harness.Result
}

// load makes read-only calls and writes until stopped.
type load struct {
	pool  *pool
	phase atomic.Value // string: what the test is doing now

	mu     sync.Mutex
	reads  []read
	writes []write
	okRead int // successful reads so far
	acked  int // acknowledged writes so far

	stopOnce sync.Once
	quit     chan struct{}
	wg       sync.WaitGroup
}

// startLoad starts one agent calling through dps and one operator writing
// through every node of c; the test's cleanup stops them if the test does
// not.
func startLoad(t *testing.T, c *harness.Cluster, key string, dps []*harness.Dataplane) *load {
	l := &load{pool: newPool(dps), quit: make(chan struct{})}
	l.phase.Store("on the baseline")
	l.wg.Add(2)
	go l.reader(key)
	go l.writer(t, c)
	t.Cleanup(func() { l.stop() })
	return l
}

// reader alternates tools/call of the read-only tool with tools/list.
func (l *load) reader(key string) {
	defer l.wg.Done()
	tick := time.NewTicker(readEvery)
	defer tick.Stop()
	for i := 0; ; i++ {
		dp := l.pool.acquire()
		r := read{dp: dp.Name, phase: l.phase.Load().(string)}
		if i%3 == 2 {
			r.what = "tools/list"
			r.err = listsWeather(dp, key)
		} else {
			city := fmt.Sprintf("city-%d", i)
			r.what = "tools/call " + actionWeather
			res, err := dp.CallTool(context.Background(), key, actionWeather, map[string]any{"city": city})
			if err == nil {
				err = res.Err()
			}
			if err == nil && !strings.Contains(res.Text, city) {
				err = fmt.Errorf("answer %q is not about %s", res.Text, city)
			}
			r.err = err
		}
		l.pool.release(dp)
		l.mu.Lock()
		l.reads = append(l.reads, r)
		if r.err == nil {
			l.okRead++
		}
		l.mu.Unlock()
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
	}
}

// listsWeather makes one tools/list and checks that it lists the
// read-only tool.
func listsWeather(dp *harness.Dataplane, key string) error {
	res, err := harness.MCPCall(context.Background(), dp.URL+"/mcp", key, "tools/list", map[string]any{})
	if err != nil {
		return err
	}
	if res.Error != nil {
		return fmt.Errorf("JSON-RPC error %d %q", res.Error.Code, res.Error.Message)
	}
	var out struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(res.Result, &out); err != nil {
		return err
	}
	for _, tool := range out.Tools {
		if tool.Name == actionWeather {
			return nil
		}
	}
	return fmt.Errorf("tools/list does not list %s: %s", actionWeather, res.Result)
}

// writer creates agents w-0001, w-0002, … with gwctl, given every node's
// URL (rotated, so that writes enter through every node).
func (l *load) writer(t *testing.T, c *harness.Cluster) {
	defer l.wg.Done()
	tick := time.NewTicker(writeEvery)
	defer tick.Stop()
	urls := c.URLs()
	for i := 1; ; i++ {
		name := fmt.Sprintf("w-%04d", i)
		servers := append(slices.Clone(urls[i%len(urls):]), urls[:i%len(urls)]...)
		w := write{name: name, phase: l.phase.Load().(string)}
		w.res = harness.Gwctl(t, c.BaseEnv(), "--server", strings.Join(servers, ","), "agent", "create", name, "--timeout", "20s", "-o", "json")
		l.mu.Lock()
		l.writes = append(l.writes, w)
		if w.res.OK() {
			l.acked++
		}
		l.mu.Unlock()
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
	}
}

// Progress awaitProgress asks for after each step.
const (
	progressReads  = 10
	progressWrites = 3
)

// awaitProgress waits until, from now on, progressReads more read-only
// calls succeeded and progressWrites more writes were acknowledged: the
// gateway works in the state the upgrade left it in (what).
func (l *load) awaitProgress(t *testing.T, what string) {
	t.Helper()
	l.mu.Lock()
	reads, acked := l.okRead, l.acked
	l.mu.Unlock()
	harness.Await(t, 60*time.Second, "reads and writes go on "+what, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.okRead < reads+progressReads || l.acked < acked+progressWrites {
			return fmt.Errorf("%d more successful reads, %d more acknowledged writes", l.okRead-reads, l.acked-acked)
		}
		return nil
	})
}

// stop ends the load, waits for the calls in flight and returns every call
// made.
func (l *load) stop() ([]read, []write) {
	l.stopOnce.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reads), slices.Clone(l.writes)
}
