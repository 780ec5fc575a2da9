package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// The tool every call runs: the demo upstream's get_weather, read-only,
// pinned with the definition the upstream lists live.
const (
	upstreamName = "demo"
	toolName     = demo.ToolGetWeather
	actionName   = upstreamName + "__" + toolName // as the data plane serves it
	benchPolicy  = `permit(principal in Team::"bench", action == Action::"` + actionName + `", resource);` + "\n"
)

// Upstream kinds (-upstream).
const (
	upstreamFast = "fast" // test/bench/fastupstream
	upstreamDemo = "demo" // test/demoupstream (Go MCP SDK)
)

// upstream is the MCP server every path reaches.
type upstream struct {
	kind   string
	desc   string // for the report
	Addr   string
	URL    string // its MCP endpoint
	health string // a GET path that answers 200 once it serves
	daemon *harness.Daemon
}

// startUpstream starts the benchmark's upstream: the fast responder
// (fastBin), or the demo upstream with GOGC=gogc when gogc is not empty.
// json makes the fast responder answer with JSON instead of event
// streams.
func startUpstream(t testing.TB, kind, fastBin string, json bool, gogc string) *upstream {
	u := &upstream{kind: kind, Addr: harness.FreeAddr(t)}
	u.URL = "http://" + u.Addr + "/mcp"
	log := harness.NewLogBuffer()
	var env []string
	if gogc != "" {
		env = append(env, "GOGC="+gogc)
	}
	mode := "event-stream answers"
	switch kind {
	case upstreamFast:
		args := []string{"--addr", u.Addr}
		if json {
			args = append(args, "--json")
			mode = "JSON answers"
		}
		u.health = "/healthz"
		u.daemon = harness.StartDaemon(t, "fastupstream", fastBin, args, env, log)
		u.desc = "the fast upstream (`test/bench/fastupstream`: the demo's tools and definitions, precomputed answers, " + mode + ")"
	case upstreamDemo:
		u.health = "/calls"
		u.daemon = harness.StartDaemon(t, "demoupstream", harness.Bin(t, "demoupstream"), []string{"--addr", u.Addr, "--log-level", "warn"}, env, log)
		u.desc = "the demo upstream (`test/demoupstream`, Go MCP SDK, " + mode + ")"
	default:
		t.Fatalf("unknown upstream %q", kind)
	}
	if gogc != "" {
		u.desc += ", GOGC=" + gogc
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
			t.Logf("=== log of the upstream ===\n%s=== end ===", log.String())
		}
	})
	err := harness.Poll(harness.StartTimeout, func() error {
		if u.daemon.Exited() {
			return fmt.Errorf("the upstream exited: %s", log.String())
		}
		resp, err := http.Get("http://" + u.Addr + u.health)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", u.health, resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("upstream not serving: %v", err)
	}
	return u
}

func (u *upstream) pids() []int { return []int{u.daemon.Pid()} }

// dpVariant is one data-plane configuration the benchmark measures, as its
// own data-plane process.
type dpVariant struct {
	path string   // the report's row
	key  string   // its -paths name
	args []string // its extra dataplane flags
}

// dpVariants are the data planes measured, in report order: audit records
// written to the OS and fsynced every 100 ms by a background loop, then
// the default, where a call is answered only once its record is fsynced
// (group commit). The default is passed explicitly so the row stays what
// it says if the default ever changes.
var dpVariants = []dpVariant{
	{path: pathDPAsync, key: "dataplane-async", args: []string{"--audit-sync=false"}},
	{path: pathDPDurable, key: "dataplane-durable", args: []string{"--audit-sync=true"}},
	{path: pathDPShadow, key: "dataplane-shadow", args: []string{"--audit-sync=true"}},
	// The async data plane with tracing on and every trace kept (run adds
	// the OTLP endpoint): its CPU per call against the async row's is the
	// tracing line of the budget.
	{path: pathDPTraced, key: "dataplane-traced", args: []string{"--audit-sync=false", "--trace-sample-ratio", "1"}},
	// The same with one trace in ten kept, a production setting.
	{path: pathDPTraced10, key: "dataplane-traced-10", args: []string{"--audit-sync=false", "--trace-sample-ratio", "0.1"}},
}

// shadowCandidate is the candidate the shadow row runs beside benchPolicy:
// the same permit and a forbid no call matches, so both decide alike and
// the candidate's decision is pure extra work.
const shadowCandidate = benchPolicy + `forbid(principal, action == Action::"` + actionName + `", resource) when { context.arguments.city == "Atlantis" };` + "\n"

// gateway is what the benchmark runs against: the upstream, and data
// planes serving it through a one-node control plane.
type gateway struct {
	c        *harness.Cluster
	dir      string
	upstream *upstream
	dps      map[string]*harness.Dataplane // by dpVariant.path
	apiKey   string                        // the bench agent's
}

// startGateway starts a one-node control plane, configures it with gwctl
// as an operator would (the upstream, its get_weather pinned as the
// upstream lists it now, an agent with an API key, a permit policy, join
// credentials) and starts one data plane per variant, returning once each
// serves the policy's config version. A pin that differed from the live
// definition would be drift: the data plane would quarantine the tool and
// refuse every call.
func startGateway(t testing.TB, up *upstream, variants []dpVariant) *gateway {
	start := time.Now()
	c := harness.StartCluster(t, 1)
	dir := t.TempDir()
	g := &gateway{c: c, dir: dir, upstream: up}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gwctl := func(v any, args ...string) {
		harness.GwctlJSON(t, c.Env(), v, append(args, "--timeout", "20s")...)
	}
	var ignore map[string]any
	gwctl(&ignore, "upstream", "add", upstreamName, "--url", g.upstream.URL)
	gwctl(&ignore, "tool", "pin", "--upstream", upstreamName, "--tool", toolName,
		"--definition", write("tool.json", string(harness.LiveToolDefinition(t, up.URL, nil, toolName))), "--class", "read-only")
	var agent struct {
		APIKey string `json:"apiKey"`
	}
	gwctl(&agent, "agent", "create", "bench-agent", "--team", "bench")
	if !strings.HasPrefix(agent.APIKey, "pck_") {
		t.Fatalf("agent create printed API key %q, want pck_…", agent.APIKey)
	}
	g.apiKey = agent.APIKey
	var policy struct {
		PolicySet struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
		} `json:"policySet"`
	}
	gwctl(&policy, "policy", "apply", "-f", write("bench.cedar", benchPolicy), "--name", "bench")
	version := uint64(policy.PolicySet.Meta.Revision)
	g.dps = map[string]*harness.Dataplane{}
	for _, v := range variants {
		name := "bench-" + v.key
		var cred struct {
			Credential string `json:"credential"`
		}
		gwctl(&cred, "dataplane", "token", "create", name)
		g.dps[v.path] = harness.StartDataplane(t, harness.DataplaneOptions{
			Name: name, ControlPlanes: c.URLs(), Credential: cred.Credential,
			Args: append([]string{"--log-level", "warn"}, v.args...),
		})
	}
	// Started together above; each is awaited here.
	for _, v := range variants {
		dp := g.dps[v.path]
		dp.AwaitServing(t, harness.StartTimeout)
		dp.AwaitReadyz(t, 20*time.Second, fmt.Sprintf("serves config version ≥ %d in normal mode", version), func(st harness.ReadyStatus) error {
			if st.Version < version || st.Mode != "normal" || st.HTTPStatus != 200 {
				return fmt.Errorf("want version ≥ %d, mode normal, 200", version)
			}
			return nil
		})
		t.Logf("%s up: %s %s", v.path, dp.URL, strings.Join(v.args, " "))
	}
	t.Logf("gateway up in %s: control plane %s, upstream %s",
		time.Since(start).Round(time.Millisecond), c.URLs()[0], g.upstream.URL)
	return g
}

// startShadow starts a rollout of the bench's policy set in shadow (for a
// month: it never moves on during the run) and waits until dp serves it.
// Every data plane of the cluster evaluates the candidate from then on, so
// the shadow row is measured last, alone.
func (g *gateway) startShadow(t testing.TB, dp *harness.Dataplane) {
	file := filepath.Join(g.dir, "candidate.cedar")
	if err := os.WriteFile(file, []byte(shadowCandidate), 0o600); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Rollout struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
		} `json:"rollout"`
	}
	harness.GwctlJSON(t, g.c.Env(), &out, "rollout", "start", "bench", "-f", file, "--shadow", "720h", "--timeout", "20s")
	version := uint64(out.Rollout.Meta.Revision)
	dp.AwaitReadyz(t, 20*time.Second, fmt.Sprintf("serves the rollout's config version ≥ %d", version), func(st harness.ReadyStatus) error {
		if st.Version < version {
			return fmt.Errorf("want version ≥ %d", version)
		}
		return nil
	})
}
