package gwctl_test

import (
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

func TestSecretHosts(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	mustSucceed(t, gw(t, "--server", c.URLs(), "secret", "set", "gh", "--hosts", "api.github.com,127.0.0.1:7450", "--from-literal", "v"))
	r := gw(t, "--server", c.URLs(), "secret", "get", "gh")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "api.github.com,127.0.0.1:7450") {
		t.Errorf("secret get does not show the hosts:\n%s", r.stdout)
	}
	// A new value keeps the binding.
	mustSucceed(t, gw(t, "--server", c.URLs(), "secret", "set", "gh", "--from-literal", "v2"))
	r = gw(t, "--server", c.URLs(), "secret", "bind", "gh", "--hosts", "api.github.com")
	mustSucceed(t, r)
	if r.stdout != "secret \"gh\" is sent only to api.github.com\n" {
		t.Errorf("bind printed %q", r.stdout)
	}
	r = gw(t, "--server", c.URLs(), "secret", "list")
	mustSucceed(t, r)
	if l := lines(r.stdout); len(l) != 2 || !strings.Contains(l[0], "HOSTS") || !strings.Contains(l[1], "api.github.com") {
		t.Errorf("secret list:\n%s", r.stdout)
	}
	// bind without hosts is refused before any call.
	before := len(c.Nodes[0].Requests())
	if r := gw(t, "--server", c.URLs(), "secret", "bind", "gh"); r.code == 0 || !strings.Contains(r.stderr, "--hosts is required") {
		t.Errorf("bind without --hosts: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(c.Nodes[0].Requests()) != before {
		t.Error("bind without --hosts reached the server")
	}
}

// TestDiscoverUpstreamFailureIsNotRetried is issue 11's finding 9 at gwctl:
// an upstream's failure (FAILED_PRECONDITION) is the answer, shown as is,
// not a reason to try the next node; a node that is down (UNAVAILABLE)
// still is.
func TestDiscoverUpstreamFailureIsNotRetried(t *testing.T) {
	upstreamFailed := func(procedure string) error {
		if procedure != adminv1connect.UpstreamServiceDiscoverUpstreamProcedure {
			return nil
		}
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(`upstream "flaky" failed: tools/list: HTTP 503: down for maintenance`))
	}
	c := gwctltest.NewCluster(t, 2)
	c.Nodes[0].Fail(upstreamFailed)
	c.Nodes[1].Fail(upstreamFailed)
	r := gw(t, "--server", c.URLs(), "upstream", "discover", "flaky")
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 503: down for maintenance") || strings.Contains(r.stderr, "no control-plane server answered") {
		t.Errorf("exit %d, stderr %q; want exit 1 with the upstream's failure", r.code, r.stderr)
	}
	if n0, n1 := len(c.Nodes[0].Requests()), len(c.Nodes[1].Requests()); n0 != 1 || n1 != 0 {
		t.Errorf("requests: %d to the first node, %d to the second; want 1 and 0", n0, n1)
	}

	c2 := gwctltest.NewCluster(t, 2)
	c2.Nodes[0].Fail(gwctltest.Unavailable)
	c2.Nodes[1].Fail(upstreamFailed)
	r = gw(t, "--server", c2.URLs(), "upstream", "discover", "flaky")
	if n0, n1 := len(c2.Nodes[0].Requests()), len(c2.Nodes[1].Requests()); n0 != 1 || n1 != 1 || r.code != 1 {
		t.Errorf("a dead first node: %d and %d requests, exit %d; want one each (failed over), exit 1", n0, n1, r.code)
	}
}
