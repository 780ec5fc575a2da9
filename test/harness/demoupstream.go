package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
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

	t    testing.TB
	args []string
	env  []string
	mu   sync.Mutex
	d    *Daemon
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
	u.t, u.args, u.env = t, append([]string{"--addr", u.Addr}, opts.Args...), env
	u.start()
	return u
}

// start runs the process and waits until it serves.
func (u *DemoUpstream) start() {
	u.t.Helper()
	d := StartDaemon(u.t, "demoupstream", Bin(u.t, "demoupstream"), u.args, u.env, u.Log)
	u.mu.Lock()
	u.d = d
	u.mu.Unlock()
	deadline := time.Now().Add(StartTimeout)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		_, err := u.Calls()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("demoupstream not serving within %s: %v", StartTimeout, err)
		}
		select {
		case <-d.Done():
			u.t.Fatalf("demoupstream exited before serving (last error: %v)", err)
		case <-time.After(backoff):
		}
	}
}

// Daemon is the upstream's current process.
func (u *DemoUpstream) Daemon() *Daemon {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.d
}

// Kill kills the upstream with SIGKILL and waits until it is gone.
func (u *DemoUpstream) Kill() {
	u.t.Logf("kill -9 demoupstream %s (pid %d)", u.URL, u.Daemon().Pid())
	u.Daemon().Kill()
}

// Restart starts the upstream again on the same address with the same
// flags and environment (a fresh process: it knows no session and has an
// empty call log), stopping it first if it still runs, and waits until it
// serves.
func (u *DemoUpstream) Restart() {
	u.t.Helper()
	if d := u.Daemon(); !d.Exited() {
		if err := d.Stop(15 * time.Second); err != nil {
			u.t.Logf("restart demoupstream: stop: %v", err)
		}
	}
	u.start()
}

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

// UpstreamState is what the demo upstream saw beyond tool calls.
type UpstreamState struct {
	// Subscribed are the resource URIs some session follows, sorted.
	Subscribed []string `json:"subscribed"`
	// Cancelled counts wait calls that ended by cancellation.
	Cancelled int `json:"cancelled"`
}

// State returns what the upstream saw beyond tool calls (GET /state).
func (u *DemoUpstream) State() (UpstreamState, error) {
	var s UpstreamState
	status, body, err := httpGet("http://" + u.Addr + "/state")
	if err != nil {
		return s, err
	}
	if status != http.StatusOK {
		return s, fmt.Errorf("GET /state: status %d: %s", status, body)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("GET /state: %q: %w", body, err)
	}
	return s, nil
}

// ResourceUpdated makes the upstream tell the sessions that subscribed to
// uri that it changed (POST /admin/resources/updated).
func (u *DemoUpstream) ResourceUpdated(uri string) error {
	body, err := json.Marshal(map[string]string{"uri": uri})
	if err != nil {
		return err
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Post("http://"+u.Addr+"/admin/resources/updated", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("POST /admin/resources/updated: status %d: %s", resp.StatusCode, msg)
	}
	return nil
}
