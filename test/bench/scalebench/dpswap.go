package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// Issue 14's data-plane goals at the scale fixture.
const (
	goalIncrementalApply = 100 * time.Millisecond
	goalSwapRSS          = 100 << 20
)

// incremental is the data plane's apply of the next version when it
// reuses the version it serves (config.Reusing), as a data plane does.
type incremental struct {
	policy timings // one policy of the 5,000 changed
	agent  timings // one more agent
	// collect is the full collection a data plane runs before it
	// compiles the next version (runtime.GC, the served version live).
	collect timings
	// extraGo is the Go heap the next version (one policy changed) holds
	// besides what it shares with the previous one, which stays live.
	extraGo uint64
}

// measureIncremental times the data plane's apply of the snapshot of st
// with one policy changed, and with one more agent, reusing the compiled
// snapshot of st: runs times each, every run from the same previous
// version.
func measureIncremental(st *state.State, sz size, runs int) (incremental, error) {
	var m incremental
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := seal.New(key)
	if err != nil {
		return m, err
	}
	built, err := configsync.NewBuilder(sealer).Build(st)
	if err != nil {
		return m, fmt.Errorf("build snapshot: %w", err)
	}
	prev, err := config.Compile(built.Bytes)
	if err != nil {
		return m, fmt.Errorf("compile the snapshot: %w", err)
	}
	policy, err := nextVersion(built.Bytes, func(s *snapshotv1.Snapshot) {
		ps := proto.CloneOf(s.PolicySets[0])
		ps.Source, ps.Version = changedPolicySource(sz), ps.Version+1
		s.PolicySets[0] = ps
	})
	if err != nil {
		return m, err
	}
	agent, err := nextVersion(built.Bytes, func(s *snapshotv1.Snapshot) {
		s.Agents = append(s.Agents, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "agent-one-more"}, Team: "scale"})
	})
	if err != nil {
		return m, err
	}
	for _, c := range []struct {
		next []byte
		into *timings
	}{{policy, &m.policy}, {agent, &m.agent}} {
		for range runs {
			start := time.Now()
			if _, err := config.Compile(c.next, config.Reusing(prev)); err != nil {
				return m, fmt.Errorf("compile the next version: %w", err)
			}
			*c.into = append(*c.into, time.Since(start))
		}
	}
	for range runs {
		start := time.Now()
		runtime.GC()
		m.collect = append(m.collect, time.Since(start))
	}
	runtime.KeepAlive(prev)
	m.extraGo = heldBy(func() any {
		c, err := config.Compile(policy, config.Reusing(prev))
		if err != nil {
			return nil
		}
		return c
	})
	return m, nil
}

// nextVersion is snapshot (encoded) changed by edit, one version on,
// encoded as the control plane encodes it.
func nextVersion(snapshot []byte, edit func(*snapshotv1.Snapshot)) ([]byte, error) {
	var s snapshotv1.Snapshot
	if err := proto.Unmarshal(snapshot, &s); err != nil {
		return nil, err
	}
	edit(&s)
	s.Version++
	return proto.MarshalOptions{Deterministic: true}.Marshal(&s)
}

// changedPolicySource is policySource with one policy changed: policy 1
// permits its agent on tool 2 instead of tool 1.
func changedPolicySource(sz size) string {
	src := policySource(sz)
	old := fmt.Sprintf("permit(principal == Agent::\"agent-%d\", action == Action::\"%s__tool-%d\", resource);\n", 1%sz.agents, upstream, 1%sz.tools)
	changed := fmt.Sprintf("permit(principal == Agent::\"agent-%d\", action == Action::\"%s__tool-%d\", resource);\n", 1%sz.agents, upstream, 2%sz.tools)
	return strings.Replace(src, old, changed, 1)
}

// changeOnePolicy is the write the benchmark swaps the data plane's
// version with: policy set "scale" with one policy changed, applied
// through the admin API (PolicyService.ApplyPolicySet, what `gwctl policy
// apply` calls).
func changeOnePolicy(ctx context.Context, t testing.TB, c *harness.Cluster, url string, sz size) {
	t.Helper()
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatalf("read the cluster CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", c.CAFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	token := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+c.Token)
			return next(ctx, req)
		}
	})
	client := adminv1connect.NewPolicyServiceClient(&http.Client{Transport: tr}, url,
		connect.WithInterceptors(token), connect.WithSendMaxBytes(64<<20), connect.WithReadMaxBytes(64<<20))
	if _, err := client.ApplyPolicySet(ctx, connect.NewRequest(&adminv1.ApplyPolicySetRequest{
		Name: "scale", Source: changedPolicySource(sz),
	})); err != nil {
		t.Fatalf("change one policy: %v", err)
	}
}

// renderIncremental writes the incremental apply's rows of the step table.
func renderIncremental(row func(string, timings), m incremental) {
	row(fmt.Sprintf("data plane: apply of a one-policy change (incremental, `config.Reusing`; goal ≤ %s)", dur(goalIncrementalApply)), m.policy)
	row("data plane: apply of one more agent (incremental)", m.agent)
	row("data plane: the collection before each compile (`runtime.GC`, the served version live)", m.collect)
}

// renderGoals writes issue 14's data-plane goals, judged on the medians
// and the peak.
func renderGoals(b *strings.Builder, m incremental, peak uint64) {
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	fmt.Fprintf(b, "\nThe next version (one policy changed) holds %s of Go heap besides what it shares with the version it replaces.\n", mib(m.extraGo))
	fmt.Fprintf(b, "\nGoal (data-plane apply of a one-policy change ≤ %s, median): %s: **%s**\n",
		dur(goalIncrementalApply), dur(m.policy.median()), verdict(m.policy.median() <= goalIncrementalApply))
	fmt.Fprintf(b, "\nGoal (data-plane peak RSS through a version swap ≤ %s): %s: **%s**\n", mib(goalSwapRSS), mib(peak), verdict(peak <= goalSwapRSS))
}
