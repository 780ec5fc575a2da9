package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// A2AAgentOptions configure StartA2AAgent.
type A2AAgentOptions struct {
	// Token, when set, is the only bearer token the agent accepts. It
	// reaches the process through A2AAGENT_TOKEN, never its command line.
	Token string
	// Legacy makes the agent speak A2A 0.3.
	Legacy bool
	// Args are extra flags, after the harness's own.
	Args []string
}

// A2AAgent is an a2aagent process (the test A2A agent of test/a2aagent, a
// server of the official Go SDK) run by a test.
type A2AAgent struct {
	Addr string
	// URL is its JSON-RPC endpoint, http://<Addr>/rpc; Base its origin.
	URL, Base string
	Log       *LogBuffer
	d         *Daemon
}

// StartA2AAgent starts the agent on a free loopback port and waits until
// it answers.
func StartA2AAgent(t testing.TB, opts A2AAgentOptions) *A2AAgent {
	t.Helper()
	a := &A2AAgent{Addr: FreeAddr(t), Log: NewLogBuffer()}
	a.Base = "http://" + a.Addr
	a.URL = a.Base + "/rpc"
	var env []string
	if opts.Token != "" {
		env = append(env, "A2AAGENT_TOKEN="+opts.Token)
	}
	args := append([]string{"--addr", a.Addr}, opts.Args...)
	if opts.Legacy {
		args = append(args, "--legacy")
	}
	t.Cleanup(func() {
		if strings.Contains(a.Log.String(), raceReport) {
			t.Errorf("a2aagent reported a data race (see its log)")
		}
		if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
			t.Logf("=== log of a2aagent (%s) ===\n%s=== end of log of a2aagent ===", a.URL, a.Log.String())
		}
	})
	a.d = StartDaemon(t, "a2aagent", Bin(t, "a2aagent"), args, env, a.Log)
	deadline := time.Now().Add(StartTimeout)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		_, err := a.Seen()
		if err == nil {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("a2aagent not serving within %s: %v", StartTimeout, err)
		}
		select {
		case <-a.d.Done():
			t.Fatalf("a2aagent exited before serving (last error: %v)", err)
		case <-time.After(backoff):
		}
	}
}

// Seen lists the Authorization headers the agent's endpoint and card
// received.
func (a *A2AAgent) Seen() ([]string, error) {
	res, err := http.Get(a.Base + "/control/seen")
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /control/seen: HTTP %d", res.StatusCode)
	}
	var out []string
	return out, json.NewDecoder(res.Body).Decode(&out)
}

// Release lets the agent's "wait:KEY" tasks go on.
func (a *A2AAgent) Release(t testing.TB, key string) {
	t.Helper()
	a.post(t, "/control/release/"+key)
}

// AddSkill changes the agent's card: one more skill.
func (a *A2AAgent) AddSkill(t testing.TB, id string) {
	t.Helper()
	a.post(t, "/control/skill/"+id)
}

func (a *A2AAgent) post(t testing.TB, path string) {
	t.Helper()
	res, err := http.Post(a.Base+path, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("POST %s: HTTP %d", path, res.StatusCode)
	}
}
