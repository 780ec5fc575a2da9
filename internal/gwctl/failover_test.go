package gwctl_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

func TestWriteFailsOverWithOneRequestID(t *testing.T) {
	tests := []struct {
		name       string
		breakNode  func(*gwctltest.Node)
		wantReason string
	}{
		{
			name:       "unavailable",
			breakNode:  func(n *gwctltest.Node) { n.Fail(gwctltest.Unavailable) },
			wantReason: "unavailable: no leader elected",
		},
		{
			// The first node applies the write, then the connection drops
			// before the answer: the retry must not apply it twice.
			name:       "lost acknowledgement",
			breakNode:  func(n *gwctltest.Node) { n.DropResponses(true) },
			wantReason: "EOF",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gwctltest.NewCluster(t, 2)
			tt.breakNode(c.Nodes[0])

			r := gw(t, "--server", c.URLs(), "agent", "create", "a1", "--team", "blue")
			mustSucceed(t, r)

			warn := lines(r.stderr)
			if len(warn) != 1 || !strings.HasPrefix(warn[0], "warning: "+c.Nodes[0].URL+": ") ||
				!strings.Contains(warn[0], tt.wantReason) || !strings.HasSuffix(warn[0], "; retried on "+c.Nodes[1].URL) {
				t.Errorf("stderr = %q, want one failover warning naming %q", r.stderr, tt.wantReason)
			}
			first, second := c.Nodes[0].Requests(), c.Nodes[1].Requests()
			if len(first) != 1 || len(second) != 1 {
				t.Fatalf("requests: first node %d, second node %d; want 1 each", len(first), len(second))
			}
			id1, id2 := first[0].Header.Get(client.HeaderRequestID), second[0].Header.Get(client.HeaderRequestID)
			if id1 == "" || id1 != id2 {
				t.Errorf("request ids %q and %q: want the same non-empty id on both attempts", id1, id2)
			}
			if got := c.Agents(); len(got) != 1 || got[0] != "a1" {
				t.Errorf("agents = %v, want [a1]", got)
			}
			if !strings.Contains(r.stdout, "pck_") {
				t.Errorf("stdout lacks the API key:\n%s", r.stdout)
			}
		})
	}
}

func TestFailoverFromClosedPortStaysOnWorkingServer(t *testing.T) {
	c := gwctltest.NewCluster(t, 1, gwctltest.WithMaxPageSize(2))
	c.AddAgents("a", "b", "c")
	down := closedURL(t)

	r := gw(t, "--server", down+","+c.Nodes[0].URL, "agent", "list")
	mustSucceed(t, r)

	warn := lines(r.stderr)
	if len(warn) != 1 || !strings.HasPrefix(warn[0], "warning: "+down+": ") ||
		!strings.Contains(warn[0], "connection refused") || !strings.HasSuffix(warn[0], "; retried on "+c.Nodes[0].URL) {
		t.Errorf("stderr = %q, want exactly one warning about %s", r.stderr, down)
	}
	// The second page went straight to the server that worked.
	if n := len(c.Nodes[0].Requests()); n != 2 {
		t.Errorf("working server saw %d requests, want 2 (one per page)", n)
	}
	if got := len(lines(r.stdout)); got != 4 {
		t.Errorf("table has %d lines, want header + 3 agents", got)
	}
}

func TestReadsSendConsistencyNotRequestID(t *testing.T) {
	tests := []struct {
		name string
		inv  invocation
		args []string
		want string
	}{
		{name: "local by default", want: ""},
		{name: "flag", args: []string{"--linearizable"}, want: "linearizable"},
		{name: "env", inv: invocation{env: map[string]string{"GWCTL_LINEARIZABLE": "true"}}, want: "linearizable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gwctltest.NewCluster(t, 1)
			args := append([]string{"--server", c.URLs(), "agent", "list"}, tt.args...)
			mustSucceed(t, tt.inv.run(t, args...))
			req := c.Nodes[0].Requests()[0]
			if got := req.Header.Get(client.HeaderConsistency); got != tt.want {
				t.Errorf("%s = %q, want %q", client.HeaderConsistency, got, tt.want)
			}
			if got := req.Header.Get(client.HeaderRequestID); got != "" {
				t.Errorf("a read sent %s %q", client.HeaderRequestID, got)
			}
		})
	}
}

func TestGivesUpAtTimeout(t *testing.T) {
	a, b := closedURL(t), closedURL(t)
	r := gw(t, "--server", a+","+b, "--timeout", "400ms", "agent", "list")
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1", r.code)
	}
	var errLines, warnings []string
	for _, l := range lines(r.stderr) {
		if strings.HasPrefix(l, "Error: ") {
			errLines = append(errLines, l)
		} else {
			warnings = append(warnings, l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], "no control-plane server answered within") {
		t.Errorf("error lines = %q", errLines)
	}
	// Several rounds ran; each distinct failover is reported once.
	want := []string{
		fmt.Sprintf("warning: %s: ", a),
		fmt.Sprintf("warning: %s: ", b),
	}
	if len(warnings) != 2 || !strings.HasPrefix(warnings[0], want[0]) || !strings.HasPrefix(warnings[1], want[1]) {
		t.Errorf("warnings = %q, want one per server", warnings)
	}
}
