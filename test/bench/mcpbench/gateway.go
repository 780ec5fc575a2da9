package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// The tool every call runs: the demo upstream's get_weather, read-only,
// pinned with the definition the demo itself lists (see liveToolDef).
const (
	upstreamName = "demo"
	toolName     = demo.ToolGetWeather
	actionName   = upstreamName + "__" + toolName // as the data plane serves it
	benchPolicy  = `permit(principal in Team::"bench", action == Action::"` + actionName + `", resource);` + "\n"
)

// liveToolDef is get_weather's definition exactly as the demo upstream
// lists it. A definition that differs from the live one is drift: the data
// plane would quarantine the tool and refuse every call.
func liveToolDef(t testing.TB) string {
	h := demo.NewHandler(demo.Options{Logger: slog.New(slog.DiscardHandler)})
	defer h.Close()
	defs, err := h.Definitions(context.Background())
	if err != nil {
		t.Fatalf("list the demo's tools: %v", err)
	}
	for _, d := range defs {
		if d.Name == toolName {
			return string(d.JSON)
		}
	}
	t.Fatalf("the demo upstream has no tool %s", toolName)
	return ""
}

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
//
// The last, a durable-audit data plane like the second, is measured after
// a policy rollout of the bench's policy set was started in shadow: every
// call is decided by the active version and evaluated by the candidate
// beside it, so its stage table shows what shadow evaluation costs (the
// "rollout" stage) next to one decision ("authorize").
var dpVariants = []dpVariant{
	{path: pathDPAsync, key: "dataplane-async", args: []string{"--audit-sync=false"}},
	{path: pathDPDurable, key: "dataplane-durable", args: []string{"--audit-sync=true"}},
	{path: pathDPShadow, key: "dataplane-shadow", args: []string{"--audit-sync=true"}},
}

// shadowCandidate is the candidate the shadow row runs beside benchPolicy:
// the same permit and a forbid no call matches, so both decide alike and
// the candidate's decision is pure extra work.
const shadowCandidate = benchPolicy + `forbid(principal, action == Action::"` + actionName + `", resource) when { context.arguments.city == "Atlantis" };` + "\n"

// gateway is what the benchmark runs against: the demo upstream, and data
// planes serving it through a one-node control plane.
type gateway struct {
	c        *harness.Cluster
	dir      string
	upstream *harness.DemoUpstream
	dps      map[string]*harness.Dataplane // by dpVariant.path
	apiKey   string                        // the bench agent's
}

// startGateway starts a one-node control plane and the demo upstream,
// configures them with gwctl as an operator would (upstream, pinned tool,
// agent with an API key, permit policy, join credentials) and starts one
// data plane per variant, returning once each serves the policy's config
// version.
func startGateway(t testing.TB, variants []dpVariant) *gateway {
	start := time.Now()
	c := harness.StartCluster(t, 1)
	dir := t.TempDir()
	g := &gateway{c: c, dir: dir, upstream: harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{Args: []string{"--log-level", "warn"}})}
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
		"--definition", write("tool.json", liveToolDef(t)), "--class", "read-only")
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
