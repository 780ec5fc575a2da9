package upgrade

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// The probe service a control plane built with -tags upgradetest serves
// (internal/controlplane/adminapi/probe_upgradetest.go): it writes and
// reads the synthetic resource kind upgrade_probe, which such a binary
// supports at one cluster version above the release's.
const (
	probePut = "/portcullis.upgradetest.v1.ProbeService/PutProbe"
	probeGet = "/portcullis.upgradetest.v1.ProbeService/GetProbe"
)

// TestVersionGateOpensWithTheLastVoter upgrades a three-node cluster from
// the current build to a test build that supports one more resource kind
// at a higher cluster version. While any voter still runs the current
// build, a write of that kind is refused with an error naming exactly the
// voters that are behind and the version needed; once the last voter runs
// the test build and has recorded its version, the same write is accepted
// and reaches every node. Finally a node moved back to the current build
// meets that write in its log and stops with a clear error instead of
// diverging, and comes back when given the test build again.
func TestVersionGateOpensWithTheLastVoter(t *testing.T) {
	cur := harness.BinDir(t)
	tagged := t.TempDir()
	start := time.Now()
	if err := harness.BuildTagged(tagged, "upgradetest", "controlplane"); err != nil {
		t.Fatal(err)
	}
	t.Logf("built controlplane with -tags upgradetest in %s", time.Since(start).Round(time.Millisecond))

	c := harness.StartClusterWith(t, harness.ClusterOptions{Nodes: 3})
	release := clusterVersionOn(t, c, c.Nodes[0])
	leader := c.Leader(t, 10*time.Second)
	order := append(c.Followers(leader), leader)
	var upgraded []string
	for i, cp := range order {
		cp.RestartFrom(tagged)
		cp.AwaitReady(t, harness.StartTimeout)
		c.AwaitMembers(t, c.NodeIDs(), 30*time.Second)
		upgraded = append(upgraded, cp.NodeID)
		awaitRecorded(t, c, cp, release+1)
		name := fmt.Sprintf("probe-%d", i+1)

		if i < len(order)-1 {
			// Every upgraded node refuses, naming the voters behind.
			var behind []string
			for _, id := range c.NodeIDs() {
				if !slices.Contains(upgraded, id) {
					behind = append(behind, id)
				}
			}
			for _, id := range upgraded {
				code, msg := putProbe(t, c, c.Node(t, id), name)
				t.Logf("probe write through %s with %v upgraded: %s: %s", id, upgraded, code, msg)
				if code != "failed_precondition" {
					t.Fatalf("probe write through %s with %v still behind: %s %q, want failed_precondition", id, behind, code, msg)
				}
				want := []string{fmt.Sprintf("kind upgrade_probe needs cluster version %d", release+1), "upgrade those nodes"}
				for _, b := range behind {
					want = append(want, fmt.Sprintf("%s (supports %d)", b, release))
				}
				for _, w := range want {
					if !strings.Contains(msg, w) {
						t.Errorf("refusal %q does not say %q", msg, w)
					}
				}
				if got := len(regexp.MustCompile(`\(supports \d+\)`).FindAllString(msg, -1)); got != len(behind) {
					t.Errorf("refusal %q names %d voters, want exactly %v", msg, got, behind)
				}
			}
			if v := clusterVersionOn(t, c, cp); v != release {
				t.Errorf("%s reports cluster version %d with %v behind, want %d", cp.NodeID, v, behind, release)
			}
			continue
		}

		// The last voter runs the test build: the gate opens.
		harness.Await(t, 30*time.Second, "every node reports the new cluster version", func() error {
			for _, n := range c.Nodes {
				if v := clusterVersionOn(t, c, n); v != release+1 {
					return fmt.Errorf("%s reports cluster version %d", n.NodeID, v)
				}
			}
			return nil
		})
		if code, msg := putProbe(t, c, cp, name); code != "" {
			t.Fatalf("probe write with every voter upgraded: %s %q", code, msg)
		}
		c.AwaitOnEveryNode(t, 20*time.Second, "the probe is stored", func(n *harness.ControlPlane, _ []string) error {
			return getProbe(t, c, n, name)
		})
	}

	// Back to the current build, a node meets the probe in its log: it
	// must stop, saying why, rather than apply the rest without it.
	f := c.Followers(c.Leader(t, 10*time.Second))[0]
	f.RestartFrom(cur)
	select {
	case <-f.Daemon().Done():
	case <-time.After(harness.StartTimeout):
		t.Fatalf("controlplane %s on the current build kept running with an upgrade_probe in its log", f.NodeID)
	}
	if f.Daemon().Err() == nil {
		t.Errorf("controlplane %s exited with status 0, want a failure", f.NodeID)
	}
	logText := f.Log.String()
	for _, w := range []string{"upgrade_probe", "upgrade this node's binary"} {
		if !strings.Contains(logText, w) {
			t.Errorf("controlplane %s stopped without saying %q", f.NodeID, w)
		}
	}
	f.RestartFrom(tagged)
	f.AwaitReady(t, harness.StartTimeout)
	c.AwaitMembers(t, c.NodeIDs(), 30*time.Second)
	if err := getProbe(t, c, f, "probe-3"); err != nil {
		t.Errorf("after coming back on the test build: %v", err)
	}
	c.MustCleanShutdown(t)
}

// clusterVersionOn asks cp for the cluster version every voter supports.
func clusterVersionOn(t *testing.T, c *harness.Cluster, cp *harness.ControlPlane) int {
	t.Helper()
	st, err := c.Status(t, cp)
	if err != nil {
		t.Fatalf("cluster status on %s: %v", cp.NodeID, err)
	}
	return st.ClusterVersion
}

// awaitRecorded waits until every running node reports that cp recorded
// version v.
func awaitRecorded(t *testing.T, c *harness.Cluster, cp *harness.ControlPlane, v int) {
	t.Helper()
	c.AwaitOnEveryNode(t, 30*time.Second, fmt.Sprintf("%s recorded cluster version %d", cp.NodeID, v), func(n *harness.ControlPlane, _ []string) error {
		st, err := c.Status(t, n)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.NodeID == cp.NodeID {
				if m.MaxClusterVersion != v {
					return fmt.Errorf("%s says %s supports %d", n.NodeID, cp.NodeID, m.MaxClusterVersion)
				}
				return nil
			}
		}
		return fmt.Errorf("%s does not list %s", n.NodeID, cp.NodeID)
	})
}

// probeCall posts a Connect JSON request to procedure on cp with the
// cluster's admin token and returns the Connect error code ("" on
// success), the error message and the body.
func probeCall(t *testing.T, c *harness.Cluster, cp *harness.ControlPlane, procedure, name string) (code, msg string, body []byte) {
	t.Helper()
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, _ := json.Marshal(map[string]any{"meta": map[string]any{"name": name}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cp.URL+procedure, bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("POST %s%s: %v", cp.URL, procedure, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		return "", "", body
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" {
		t.Fatalf("POST %s%s: HTTP %d, body %q is not a Connect error", cp.URL, procedure, resp.StatusCode, body)
	}
	return e.Code, e.Message, body
}

// putProbe writes a probe through cp.
func putProbe(t *testing.T, c *harness.Cluster, cp *harness.ControlPlane, name string) (code, msg string) {
	t.Helper()
	code, msg, _ = probeCall(t, c, cp, probePut, name)
	return code, msg
}

// getProbe reads a probe from cp's local state.
func getProbe(t *testing.T, c *harness.Cluster, cp *harness.ControlPlane, name string) error {
	t.Helper()
	code, msg, body := probeCall(t, c, cp, probeGet, name)
	if code != "" {
		return fmt.Errorf("%s: get probe %s: %s %s", cp.NodeID, name, code, msg)
	}
	if !bytes.Contains(body, []byte(name)) {
		return fmt.Errorf("%s: get probe %s answered %s", cp.NodeID, name, body)
	}
	return nil
}
