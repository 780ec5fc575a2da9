package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Action names of the demo upstream's tools as the gateway serves them
// ("<upstream prefix>__<tool>"; the upstream is registered as "demo").
const (
	actionWeather  = "demo__get_weather"
	actionPayment  = "demo__send_payment"
	actionInvoices = "demo__list_invoices"
)

// Tool definitions the tests pin, as an operator would after reviewing the
// upstream's tools/list: exactly what the demo upstream serves ("go run
// ./test/demoupstream tools DIR" prints them), since the data planes
// quarantine a pinned tool whose live definition hashes differently.
const (
	weatherDefinition  = `{"annotations":{"idempotentHint":true,"openWorldHint":false,"readOnlyHint":true},"description":"Current weather for a city (made-up data).","inputSchema":{"additionalProperties":false,"properties":{"city":{"description":"city to report on","type":"string"}},"required":["city"],"type":"object"},"name":"get_weather","outputSchema":{"additionalProperties":false,"properties":{"city":{"type":"string"},"forecast":{"type":"string"},"temp_c":{"type":"integer"}},"required":["city","forecast","temp_c"],"type":"object"}}`
	paymentDefinition  = `{"annotations":{"destructiveHint":true,"idempotentHint":false,"openWorldHint":true,"readOnlyHint":false},"description":"Send a payment (pretend: no money moves).","inputSchema":{"additionalProperties":false,"properties":{"amount":{"description":"amount in cents","type":"integer"},"to":{"description":"payee","type":"string"}},"required":["to","amount"],"type":"object"},"name":"send_payment","outputSchema":{"additionalProperties":false,"properties":{"amount":{"type":"integer"},"id":{"type":"string"},"status":{"type":"string"},"to":{"type":"string"}},"required":["id","to","amount","status"],"type":"object"}}`
	invoicesDefinition = `{"annotations":{"idempotentHint":true,"openWorldHint":false,"readOnlyHint":true},"description":"List invoices, optionally for one customer.","inputSchema":{"additionalProperties":false,"properties":{"customer":{"description":"only this customer's invoices","type":"string"},"limit":{"description":"at most this many invoices (default all)","type":"integer"}},"type":"object"},"name":"list_invoices","outputSchema":{"additionalProperties":false,"properties":{"invoices":{"items":{"additionalProperties":false,"properties":{"amount":{"type":"integer"},"customer":{"type":"string"},"id":{"type":"string"}},"required":["id","customer","amount"],"type":"object"},"type":["null","array"]}},"required":["invoices"],"type":"object"}}`
)

// opsPolicy permits every tool call by agents of team ops; nothing else is
// permitted (Cedar denies by default).
const opsPolicy = `permit(principal in Team::"ops", action in Action::"call_tool", resource);` + "\n"

// degradedAfter is the data planes' --degraded-after in these tests.
const degradedAfter = 3 * time.Second

// gateway is a control plane with the demo upstream registered behind a
// bearer secret, get_weather pinned read-only and send_payment pinned
// mutating, two agents (ops, permitted by policy; dev, not) and data planes
// that serve the resulting configuration.
type gateway struct {
	c   *harness.Cluster
	up  *harness.DemoUpstream
	dir string
	// upstreamSecret is the only credential the upstream accepts; the data
	// planes send it, from the secret "demo-token".
	upstreamSecret string
	// API keys of the agents: opsKey's agent is in team ops, devKey's in
	// team dev.
	opsKey, devKey string
	// policyVersion is the config version of the "ops" policy set.
	policyVersion uint64
	dps           []*harness.Dataplane
}

// startGateway starts an n-node control plane and the demo upstream,
// configures them through gwctl, starts one data plane per name (each
// with its own join credential, every control-plane URL and
// --degraded-after 3s) and returns once every data plane serves the
// policy's config version in normal mode.
func startGateway(t *testing.T, nodes int, dataplanes ...string) *gateway {
	t.Helper()
	return startGatewayWith(t, nil, nodes, dataplanes...)
}

// startGatewayWith is startGateway with extra flags for every
// control-plane node.
func startGatewayWith(t *testing.T, cpArgs []string, nodes int, dataplanes ...string) *gateway {
	t.Helper()
	return startGatewayOn(t, harness.ClusterOptions{Nodes: nodes, Args: cpArgs}, dataplanes...)
}

// startGatewayOn is startGateway with the control plane's options (its
// store, for one).
func startGatewayOn(t *testing.T, opts harness.ClusterOptions, dataplanes ...string) *gateway {
	t.Helper()
	start := time.Now()
	nodes := opts.Nodes
	g := &gateway{c: harness.StartClusterWith(t, opts), dir: t.TempDir(), upstreamSecret: "ups_" + randomHex(t, 16)}
	g.up = harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{RequireBearer: g.upstreamSecret})

	secretFile := g.writeFile(t, "upstream.secret", g.upstreamSecret)
	g.gwctl(t, "secret", "set", "demo-token", "--hosts", "127.0.0.1", "--from-file", secretFile) // every test upstream listens there
	g.gwctl(t, "upstream", "add", "demo", "--url", g.up.URL, "--bearer-secret", "demo-token")
	g.pin(t, "get_weather", "read-only", weatherDefinition)
	g.pin(t, "send_payment", "mutating", paymentDefinition)
	g.opsKey = g.createAgent(t, "ops-agent", "ops")
	g.devKey = g.createAgent(t, "dev-agent", "dev")
	g.policyVersion = g.applyPolicy(t, "ops", opsPolicy)

	for _, name := range dataplanes {
		g.dps = append(g.dps, g.startDataplane(t, name))
	}
	for _, dp := range g.dps {
		dp.AwaitServing(t, harness.StartTimeout)
	}
	for _, dp := range g.dps {
		awaitVersion(t, dp, g.policyVersion, 20*time.Second)
	}
	t.Logf("gateway up in %s: %d control-plane node(s), data planes %v at config version ≥ %d, upstream %s",
		time.Since(start).Round(time.Millisecond), nodes, dataplanes, g.policyVersion, g.up.URL)
	return g
}

// env is the gwctl environment with every node's URL.
func (g *gateway) env() []string { return g.c.Env() }

// gwctl runs gwctl against every node and fails the test unless it
// succeeds.
func (g *gateway) gwctl(t *testing.T, args ...string) harness.Result {
	t.Helper()
	return harness.MustGwctl(t, g.env(), append(args, "--timeout", "20s")...)
}

// writeFile writes content to a new file in the gateway's directory
// (mode 0600: some are secrets) and returns its path.
func (g *gateway) writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(g.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// revisioned is the part of a gwctl resource answer the tests read: the
// Raft index of the write, which is the config version a data plane serves
// once it has the change.
type revisioned struct {
	Meta struct {
		Revision harness.Int64 `json:"revision"`
	} `json:"meta"`
}

// pin approves a tool definition of the demo upstream and returns the
// config version of the change. It fails the test if gwctl fails.
func (g *gateway) pin(t *testing.T, tool, class, definition string) uint64 {
	t.Helper()
	v, err := g.tryPin(t, tool, class, definition)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tryPin is pin that returns gwctl's failure instead.
func (g *gateway) tryPin(t *testing.T, tool, class, definition string) (uint64, error) {
	t.Helper()
	file := g.writeFile(t, fmt.Sprintf("%s-%d.json", tool, time.Now().UnixNano()), definition)
	r := harness.Gwctl(t, g.env(), "tool", "pin", "--upstream", "demo", "--tool", tool,
		"--definition", file, "--class", class, "--timeout", "20s", "-o", "json")
	if err := r.Err(); err != nil {
		return 0, err
	}
	var out struct {
		Pin revisioned `json:"pin"`
	}
	if err := r.JSON(&out); err != nil {
		return 0, err
	}
	return uint64(out.Pin.Meta.Revision), nil
}

// createAgent registers an agent in team and returns its API key.
func (g *gateway) createAgent(t *testing.T, name, team string) string {
	t.Helper()
	var out struct {
		APIKey string `json:"apiKey"`
	}
	harness.GwctlJSON(t, g.env(), &out, "agent", "create", name, "--team", team, "--timeout", "20s")
	if !strings.HasPrefix(out.APIKey, "pck_") {
		t.Fatalf("agent create %s printed API key %q, want pck_…", name, out.APIKey)
	}
	return out.APIKey
}

// applyPolicy applies a Cedar policy set and returns its config version.
func (g *gateway) applyPolicy(t *testing.T, name, source string) uint64 {
	t.Helper()
	file := g.writeFile(t, name+".cedar", source)
	var out struct {
		PolicySet revisioned `json:"policySet"`
	}
	harness.GwctlJSON(t, g.env(), &out, "policy", "apply", "-f", file, "--name", name, "--timeout", "20s")
	if out.PolicySet.Meta.Revision <= 0 {
		t.Fatalf("policy apply %s printed revision %d", name, out.PolicySet.Meta.Revision)
	}
	return uint64(out.PolicySet.Meta.Revision)
}

// freeze turns the emergency brake on or off through env and returns the
// config version of the change.
func freeze(t *testing.T, env []string, on bool, reason string) uint64 {
	t.Helper()
	args := []string{"freeze", "off", "--timeout", "20s"}
	if on {
		args = []string{"freeze", "on", "--reason", reason, "--timeout", "20s"}
	}
	var out struct {
		ConfigVersion harness.Int64 `json:"configVersion"`
	}
	harness.GwctlJSON(t, env, &out, args...)
	if out.ConfigVersion <= 0 {
		t.Fatalf("gwctl %s printed config version %d", strings.Join(args, " "), out.ConfigVersion)
	}
	return uint64(out.ConfigVersion)
}

// startDataplane issues a join credential for name and starts a data
// plane with it, pointed at every control-plane node, with extra flags
// args. It does not wait.
func (g *gateway) startDataplane(t *testing.T, name string, args ...string) *harness.Dataplane {
	t.Helper()
	var out struct {
		Credential string `json:"credential"`
	}
	harness.GwctlJSON(t, g.env(), &out, "dataplane", "token", "create", name, "--timeout", "20s")
	if !strings.HasPrefix(out.Credential, "pcj1_") {
		t.Fatalf("dataplane token create %s printed credential %q, want pcj1_…", name, out.Credential)
	}
	return harness.StartDataplane(t, harness.DataplaneOptions{
		Name: name, ControlPlanes: g.c.URLs(), Credential: out.Credential, DegradedAfter: degradedAfter, Args: args,
	})
}

// dataplaneStatus is one entry of "gwctl dataplane list -o json".
type dataplaneStatus struct {
	Name            string        `json:"name"`
	ServingVersion  harness.Int64 `json:"servingVersion"`
	ReportedVersion harness.Int64 `json:"reportedVersion"`
	Applied         bool          `json:"applied"` // omitted, so false, for a rejection
	Reason          string        `json:"reason"`
	Mode            string        `json:"mode"`
	NodeID          string        `json:"nodeId"`
	Connected       bool          `json:"connected"`
	Lag             harness.Int64 `json:"lag"`
	LastSeen        time.Time     `json:"lastSeen"`
}

// listDataplanes runs "gwctl dataplane list -o json" through env and
// returns the statuses by name.
func listDataplanes(t *testing.T, env []string) (map[string]dataplaneStatus, error) {
	t.Helper()
	r := harness.Gwctl(t, env, "dataplane", "list", "-o", "json", "--timeout", "10s")
	if err := r.Err(); err != nil {
		return nil, err
	}
	var out struct {
		Dataplanes []dataplaneStatus `json:"dataplanes"`
	}
	if err := r.JSON(&out); err != nil {
		return nil, err
	}
	m := map[string]dataplaneStatus{}
	for _, d := range out.Dataplanes {
		m[d.Name] = d
	}
	return m, nil
}

// awaitVersion waits until dp serves at least version in normal mode.
func awaitVersion(t *testing.T, dp *harness.Dataplane, version uint64, timeout time.Duration) harness.ReadyStatus {
	t.Helper()
	return dp.AwaitReadyz(t, timeout, fmt.Sprintf("serves config version ≥ %d in normal mode", version), func(st harness.ReadyStatus) error {
		if st.Version < version || st.Mode != "normal" || st.HTTPStatus != 200 {
			return fmt.Errorf("want version ≥ %d, mode normal, 200", version)
		}
		return nil
	})
}

func weatherArgs(city string) map[string]any { return map[string]any{"city": city} }

func paymentArgs(to string, amount int) map[string]any {
	return map[string]any{"to": to, "amount": amount}
}

// mustCall calls tool through dp as the agent holding key and fails the
// test unless the tool ran and succeeded.
func mustCall(t *testing.T, dp *harness.Dataplane, key, tool string, args any) harness.ToolCall {
	t.Helper()
	c, err := dp.CallTool(context.Background(), key, tool, args)
	if err == nil {
		err = c.Err()
	}
	if err != nil {
		t.Fatalf("dataplane %s: call %s: %v", dp.Name, tool, err)
	}
	return c
}

// mustRefuse calls tool through dp as the agent holding key and fails the
// test unless the gateway refused it with reason (an isError result
// carrying the reason, or a JSON-RPC error with it).
func mustRefuse(t *testing.T, dp *harness.Dataplane, key, tool string, args any, reason string) harness.ToolCall {
	t.Helper()
	c, err := dp.CallTool(context.Background(), key, tool, args)
	if err != nil {
		t.Fatalf("dataplane %s: call %s: %v", dp.Name, tool, err)
	}
	if c.Err() == nil || c.Reason != reason {
		t.Fatalf("dataplane %s: call %s: HTTP %d, isError %t, reason %q, text %q; want a refusal with reason %q",
			dp.Name, tool, c.HTTPStatus, c.IsError, c.Reason, c.Text, reason)
	}
	return c
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
