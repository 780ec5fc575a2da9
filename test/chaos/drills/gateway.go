package drills

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// The demo upstream's tools the drills call: get_weather, pinned
// read-only, and send_payment, pinned mutating. As the gateway serves
// them, their action names are "<upstream>__<tool>".
const (
	readTool  = "get_weather"
	writeTool = "send_payment"
)

// drillPolicy permits every tool call by agents of team ops.
const drillPolicy = `permit(principal in Team::"ops", action in Action::"call_tool", resource);` + "\n"

// degradedAfter is the data planes' --degraded-after.
const degradedAfter = 3 * time.Second

// upstreamSpec is one demo upstream of a gateway.
type upstreamSpec struct {
	name string
	args []string // demoupstream flags (e.g. --latency)
	add  []string // extra "gwctl upstream add" flags (e.g. --timeout-per-call)
}

// gatewaySpec says what startGateway starts.
type gatewaySpec struct {
	nodes int
	// etcd, when set, puts the control plane on an etcd cluster of this
	// many members instead of Raft.
	etcd       int
	dataplanes []string
	upstreams  []upstreamSpec // default: one, "demo"
	agents     []string       // agents of team ops; default: one, "ops-agent"
}

// gateway is a control plane with demo upstreams registered, their
// get_weather pinned read-only and send_payment pinned mutating, agents
// of team ops permitted by policy, and data planes serving that
// configuration.
type gateway struct {
	c    *harness.Cluster
	etcd *harness.EtcdCluster // nil on Raft
	ups  map[string]*harness.DemoUpstream
	dps  []*harness.Dataplane
	keys map[string]string // API key by agent name
	// agents are the agents' names, in the spec's order.
	agents []string
	// version is the config version the data planes served at start.
	version uint64
	dir     string
}

// startGateway starts what spec says, configures it through gwctl as an
// operator would, and returns once every data plane serves the
// configuration in normal mode.
func startGateway(t testing.TB, spec gatewaySpec) *gateway {
	t.Helper()
	start := time.Now()
	if len(spec.upstreams) == 0 {
		spec.upstreams = []upstreamSpec{{name: "demo"}}
	}
	if len(spec.agents) == 0 {
		spec.agents = []string{"ops-agent"}
	}
	g := &gateway{ups: map[string]*harness.DemoUpstream{}, keys: map[string]string{}, dir: t.TempDir()}
	if spec.etcd > 0 {
		g.etcd = harness.StartEtcd(t, spec.etcd)
	}
	g.c = harness.StartClusterWith(t, harness.ClusterOptions{Nodes: spec.nodes, Etcd: g.etcd})
	for _, u := range spec.upstreams {
		up := harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{Args: append([]string{"--log-level", "warn"}, u.args...)})
		g.ups[u.name] = up
		g.gwctl(t, nil, append([]string{"upstream", "add", u.name, "--url", up.URL}, u.add...)...)
		g.pinAsServed(t, u.name, readTool, "read-only")
		g.pinAsServed(t, u.name, writeTool, "mutating")
	}
	for _, a := range spec.agents {
		var out struct {
			APIKey string `json:"apiKey"`
		}
		g.gwctl(t, &out, "agent", "create", a, "--team", "ops")
		if !strings.HasPrefix(out.APIKey, "pck_") {
			t.Fatalf("agent create %s printed API key %q, want pck_…", a, out.APIKey)
		}
		g.keys[a] = out.APIKey
		g.agents = append(g.agents, a)
	}
	var policy struct {
		PolicySet struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
		} `json:"policySet"`
	}
	g.gwctl(t, &policy, "policy", "apply", "-f", g.writeFile(t, "ops.cedar", drillPolicy), "--name", "ops")
	g.version = uint64(policy.PolicySet.Meta.Revision)
	for _, name := range spec.dataplanes {
		var cred struct {
			Credential string `json:"credential"`
		}
		g.gwctl(t, &cred, "dataplane", "token", "create", name)
		g.dps = append(g.dps, harness.StartDataplane(t, harness.DataplaneOptions{
			Name: name, ControlPlanes: g.c.URLs(), Credential: cred.Credential, DegradedAfter: degradedAfter,
		}))
	}
	for _, dp := range g.dps {
		dp.AwaitServing(t, harness.StartTimeout)
	}
	for _, dp := range g.dps {
		awaitMode(t, dp, "normal", g.version, 20*time.Second)
	}
	t.Logf("gateway up in %s: %d control-plane node(s), data planes %v at config version ≥ %d",
		time.Since(start).Round(time.Millisecond), spec.nodes, spec.dataplanes, g.version)
	return g
}

// gwctl runs gwctl against every node with -o json and a 20s timeout,
// fails the test unless it succeeds, and decodes its output into out
// (when not nil).
func (g *gateway) gwctl(t testing.TB, out any, args ...string) {
	t.Helper()
	args = append(args, "--timeout", "20s", "-o", "json")
	r := harness.MustGwctl(t, g.c.Env(), args...)
	if out != nil {
		if err := r.JSON(out); err != nil {
			t.Fatal(err)
		}
	}
}

// writeFile writes content to a new file in the gateway's directory.
func (g *gateway) writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(g.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pinAsServed pins tool of upstream with the definition the upstream
// serves now (so no drift check quarantines it), as class.
func (g *gateway) pinAsServed(t testing.TB, upstream, tool, class string) {
	t.Helper()
	def := harness.LiveToolDefinition(t, g.ups[upstream].URL, nil, tool)
	file := g.writeFile(t, fmt.Sprintf("%s-%s.json", upstream, tool), string(def))
	g.gwctl(t, nil, "tool", "pin", "--upstream", upstream, "--tool", tool, "--definition", file, "--class", class)
}

// awaitMode waits until dp serves at least version in mode (200, and
// connected to the control plane when mode is normal) and returns how
// long that took.
func awaitMode(t testing.TB, dp *harness.Dataplane, mode string, version uint64, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	dp.AwaitReadyz(t, timeout, fmt.Sprintf("serves config version ≥ %d in mode %s", version, mode), func(st harness.ReadyStatus) error {
		if st.Version < version || st.Mode != mode || st.HTTPStatus != 200 || (mode == "normal" && !st.ControlPlane) {
			return fmt.Errorf("want version ≥ %d, mode %s, 200", version, mode)
		}
		return nil
	})
	return time.Since(start)
}

// action is the name the gateway serves upstream's tool under.
func action(upstream, tool string) string { return upstream + "__" + tool }
