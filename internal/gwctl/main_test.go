package gwctl_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/gwctl"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// result is what one gwctl invocation produced.
type result struct {
	stdout, stderr string
	code           int
}

// invocation describes one gwctl run.
type invocation struct {
	env   map[string]string
	stdin string
}

// gw runs gwctl with args, an empty environment and empty stdin.
func gw(t *testing.T, args ...string) result {
	t.Helper()
	return invocation{}.run(t, args...)
}

func (inv invocation) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	root := gwctl.NewRootCommand(strings.NewReader(inv.stdin), &out, &errOut,
		gwctl.WithLookupEnv(func(k string) (string, bool) {
			v, ok := inv.env[k]
			return v, ok
		}))
	root.SetArgs(args)
	code := gwctl.Run(context.Background(), root)
	r := result{stdout: out.String(), stderr: errOut.String(), code: code}
	t.Logf("gwctl %s\n-> exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
}
