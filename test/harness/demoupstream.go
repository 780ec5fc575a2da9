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

// DemoUpstreamOptions configure StartDemoUpstream.
type DemoUpstreamOptions struct {
	// RequireBearer, when set, is the only bearer token the upstream
	// accepts. It reaches the process through DEMOUPSTREAM_REQUIRE_BEARER,
	// never its command line.
	RequireBearer string
	// Args are extra flags, after the harness's own.
	Args []string
}

// DemoUpstream is a demoupstream process (the demo MCP server of
// test/demoupstream) run by a test.
type DemoUpstream struct {
	Addr string
	// URL is its MCP endpoint, http://<Addr>/mcp.
	URL string
	Log *LogBuffer
	d   *Daemon
}

// StartDemoUpstream starts the demo upstream on a free loopback port and
// waits until it answers GET /calls.
func StartDemoUpstream(t testing.TB, opts DemoUpstreamOptions) *DemoUpstream {
	t.Helper()
	u := &DemoUpstream{Addr: FreeAddr(t), Log: NewLogBuffer()}
	u.URL = "http://" + u.Addr + "/mcp"
	var env []string
	if opts.RequireBearer != "" {
		env = append(env, "DEMOUPSTREAM_REQUIRE_BEARER="+opts.RequireBearer)
	}
	t.Cleanup(func() {
		if strings.Contains(u.Log.String(), raceReport) {
			t.Errorf("demoupstream reported a data race (see its log)")
		}
		if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
			t.Logf("=== log of demoupstream (%s) ===\n%s=== end of log of demoupstream ===", u.URL, u.Log.String())
		}
	})
	u.d = StartDaemon(t, "demoupstream", Bin(t, "demoupstream"), append([]string{"--addr", u.Addr}, opts.Args...), env, u.Log)
	deadline := time.Now().Add(StartTimeout)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		_, err := u.Calls()
		if err == nil {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("demoupstream not serving within %s: %v", StartTimeout, err)
		}
		select {
		case <-u.d.Done():
			t.Fatalf("demoupstream exited before serving (last error: %v)", err)
		case <-time.After(backoff):
		}
	}
}

// Daemon is the upstream's process.
func (u *DemoUpstream) Daemon() *Daemon { return u.d }

// UpstreamCall is one tools/call request as it reached the demo upstream.
type UpstreamCall struct {
	Tool          string              `json:"tool"`
	Arguments     json.RawMessage     `json:"arguments"`
	Authorization string              `json:"authorization"`
	Header        map[string][]string `json:"header"`
	Time          time.Time           `json:"time"`
	Status        int                 `json:"status"`
}

// Calls lists the tools/call requests the upstream received, oldest first
// (GET /calls).
func (u *DemoUpstream) Calls() ([]UpstreamCall, error) {
	status, body, err := httpGet("http://" + u.Addr + "/calls")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /calls: status %d: %s", status, body)
	}
	var calls []UpstreamCall
	if err := json.Unmarshal(body, &calls); err != nil {
		return nil, fmt.Errorf("GET /calls: %q: %w", body, err)
	}
	return calls, nil
}
