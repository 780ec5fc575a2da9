package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestAuditSurvivesControlPlaneLeaderKill is the second half of the audit
// acceptance with real processes: a steady stream of calls goes through one
// data plane of a three-node control plane; while the data plane uploads
// its records, the control-plane leader is killed with SIGKILL, calls go
// on, and the killed node is restarted from its data dir. Once the data
// plane reports no upload lag, every node holds the data plane's sequences
// 1..N (N its last local record) exactly once, every answered call's
// record among them, and "gwctl audit verify" passes on every node with
// the same chain head.
func TestAuditSurvivesControlPlaneLeaderKill(t *testing.T) {
	const name = "dp-lk"
	g := startGateway(t, 3, name)
	c, dp := g.c, g.dps[0]
	loadStart := time.Now()
	// Every wait below shares one budget (a passing run needs ~10s of it),
	// so the test ends by itself well within a minute of the gateway
	// starting, whatever hangs.
	deadline := loadStart.Add(40 * time.Second)
	within := func(d time.Duration) time.Duration {
		return max(min(d, time.Until(deadline)), 100*time.Millisecond)
	}

	// Steady load: read-only calls, each with its own city, so a call's
	// record can be told from every other's.
	const workers = 3
	var (
		mu       sync.Mutex
		answered []string // cities of the calls that got a successful answer
		nAnswer  atomic.Int64
		failed   atomic.Int64
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				city := fmt.Sprintf("lk-%d-%d", w, i)
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := dp.CallTool(cctx, g.opsKey, actionWeather, weatherArgs(city))
				cancel()
				if err != nil || res.Err() != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				answered = append(answered, city)
				mu.Unlock()
				nAnswer.Add(1)
			}
		}()
	}
	// Registered after the gateway's cleanups, so it runs before them: a
	// failing test never leaves callers talking to stopped processes.
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})

	// Kill only while an upload is under way: the control plane has
	// acknowledged some records and others wait to be sent.
	var lagAtKill, localAtKill uint64
	harness.Await(t, within(20*time.Second), "calls answered and the audit upload under way", func() error {
		if n := nAnswer.Load(); n < 30 {
			return fmt.Errorf("%d calls answered", n)
		}
		lag, err := auditUploadLag(dp)
		if err != nil {
			return err
		}
		local, err := dp.AuditRecords()
		if err != nil {
			return err
		}
		if lag == 0 || uint64(len(local)) <= lag {
			return fmt.Errorf("%d local records, upload lag %d: want some acknowledged and some pending", len(local), lag)
		}
		lagAtKill, localAtKill = lag, uint64(len(local))
		return nil
	})
	victim := c.Leader(t, within(10*time.Second))
	answeredAtKill := nAnswer.Load()
	victim.Kill()
	killedAt := time.Now()
	t.Logf("killed leader %s with %d calls answered, %d local records, upload lag %d", victim.NodeID, answeredAtKill, localAtKill, lagAtKill)

	newLeader := c.Leader(t, within(15*time.Second))
	if newLeader == victim {
		t.Fatalf("the killed node %s is still named leader", victim.NodeID)
	}
	t.Logf("new leader %s observed %s after the kill", newLeader.NodeID, time.Since(killedAt).Round(time.Millisecond))

	// Calls keep being answered, and the upload gets past where it stood
	// at the kill, with the old leader still down.
	harness.Await(t, within(15*time.Second), "calls answered after the kill", func() error {
		if n := nAnswer.Load() - answeredAtKill; n < 30 {
			return fmt.Errorf("%d calls answered since the kill", n)
		}
		return nil
	})
	harness.Await(t, within(20*time.Second), "the new leader holds the records that were local at the kill", func() error {
		ch, err := auditChain(t, c.Env(newLeader.URL), name)
		if err != nil {
			return err
		}
		if uint64(ch.LastSequence) < localAtKill {
			return fmt.Errorf("%s holds up to record %d, want ≥ %d", newLeader.NodeID, ch.LastSequence, localAtKill)
		}
		return nil
	})
	victim.Restart()
	victim.AwaitReady(t, within(harness.StartTimeout))
	// A restarted node refuses tokens until it has re-applied its log.
	harness.Await(t, within(20*time.Second), victim.NodeID+" serves the admin API", func() error {
		_, err := c.Status(t, victim)
		return err
	})
	t.Logf("%s restarted and serving %s after the kill", victim.NodeID, time.Since(killedAt).Round(time.Millisecond))

	// Keep the load on for about 8s in all, and for some calls after the
	// restart.
	answeredAtRestart := nAnswer.Load()
	harness.Await(t, within(15*time.Second), "the load ran ~8s and calls were answered after the restart", func() error {
		if n := nAnswer.Load() - answeredAtRestart; n < 20 {
			return fmt.Errorf("%d calls answered since the restart", n)
		}
		if d := time.Since(loadStart); d < 8*time.Second {
			return fmt.Errorf("load running for %s", d.Round(time.Millisecond))
		}
		return nil
	})
	stop()
	wg.Wait()
	t.Logf("load: %d calls answered, %d failed or unanswered, over %s", nAnswer.Load(), failed.Load(), time.Since(loadStart).Round(time.Millisecond))

	harness.Await(t, within(20*time.Second), "audit upload lag 0", func() error {
		lag, err := auditUploadLag(dp)
		if err != nil {
			return err
		}
		if lag != 0 {
			return fmt.Errorf("upload lag %d", lag)
		}
		return nil
	})

	// The data plane's own log: sequences 1..N, one record per answered
	// call.
	local, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(len(local))
	bySeq := make(map[uint64]harness.AuditRecord, len(local))
	byCity := map[string][]uint64{}
	for i, r := range local {
		if r.Sequence != uint64(i)+1 {
			t.Fatalf("the data plane's log holds record %d at position %d", r.Sequence, i+1)
		}
		bySeq[r.Sequence] = r
		var args struct {
			City string `json:"city"`
		}
		if r.ArgumentsJSON != "" && json.Unmarshal([]byte(r.ArgumentsJSON), &args) == nil && args.City != "" {
			byCity[args.City] = append(byCity[args.City], r.Sequence)
		}
	}
	mu.Lock()
	cities := append([]string(nil), answered...)
	mu.Unlock()
	if n < uint64(len(cities)) {
		t.Fatalf("the data plane's log holds %d records for %d answered calls", n, len(cities))
	}
	for _, city := range cities {
		if seqs := byCity[city]; len(seqs) != 1 {
			t.Fatalf("answered call for %q has records %v in the data plane's log, want exactly one", city, seqs)
		}
	}

	// Every node holds 1..N exactly once, each the data plane's record: so
	// every answered call's record (one of 1..N, found above) is on every
	// node.
	c.AwaitOnEveryNode(t, within(30*time.Second), fmt.Sprintf("records 1..%d of %s", n, name), func(cp *harness.ControlPlane, env []string) error {
		recs := queryAll(t, env, "--dataplane", name)
		count := map[uint64]int{}
		for _, r := range recs {
			s := uint64(r.Sequence)
			if s < 1 || s > n {
				t.Fatalf("%s holds record %d of %s, beyond the data plane's last record %d", cp.NodeID, s, name, n)
			}
			if count[s]++; count[s] > 1 {
				t.Fatalf("%s holds record %d of %s more than once", cp.NodeID, s, name)
			}
			if l := bySeq[s]; r.Agent != l.Agent || r.Tool != l.Tool || r.Outcome != l.Outcome {
				t.Fatalf("%s record %d: agent %q tool %q outcome %q; the data plane's: %q %q %q",
					cp.NodeID, s, r.Agent, r.Tool, r.Outcome, l.Agent, l.Tool, l.Outcome)
			}
		}
		if uint64(len(recs)) != n {
			return fmt.Errorf("%s holds %d of %d records", cp.NodeID, len(recs), n)
		}
		return nil
	})

	// Every node's copy verifies, gap-free from 1 to N, with the same chain
	// head; so does gwctl with every node's URL.
	var head string
	for _, cp := range c.Nodes {
		ch, err := auditChain(t, c.Env(cp.URL), name)
		if err != nil {
			t.Fatalf("audit verify on %s: %v", cp.NodeID, err)
		}
		if uint64(ch.Records) != n || ch.FirstSequence != 1 || uint64(ch.LastSequence) != n {
			t.Fatalf("audit verify on %s: chain of %s has %d records, %d..%d; want %d, 1..%d",
				cp.NodeID, name, ch.Records, ch.FirstSequence, ch.LastSequence, n, n)
		}
		if head != "" && ch.Head != head {
			t.Fatalf("audit verify on %s: chain head %s, another node's %s", cp.NodeID, ch.Head, head)
		}
		head = ch.Head
	}
	harness.MustGwctl(t, g.env(), "audit", "verify", "--timeout", "30s")
	t.Logf("every node holds records 1..%d of %s exactly once (%d answered calls among them) and verifies", n, name, len(cities))
}

// verifiedChain is one chain of "gwctl audit verify -o json".
type verifiedChain struct {
	Dataplane     string        `json:"dataplane"`
	Records       harness.Int64 `json:"records"`
	FirstSequence harness.Int64 `json:"firstSequence"`
	LastSequence  harness.Int64 `json:"lastSequence"`
	Head          string        `json:"head"`
}

// auditChain runs "gwctl audit verify -o json" through env (normally one
// node alone) and returns the chain of data plane dp. It is an error when
// gwctl fails (verify fails when a chain does not), the store does not
// report ok, or holds no chain of dp.
func auditChain(t *testing.T, env []string, dp string) (verifiedChain, error) {
	t.Helper()
	r := harness.Gwctl(t, env, "audit", "verify", "-o", "json", "--timeout", "30s")
	if err := r.Err(); err != nil {
		return verifiedChain{}, err
	}
	var out struct {
		OK     bool            `json:"ok"`
		Chains []verifiedChain `json:"chains"`
	}
	if err := r.JSON(&out); err != nil {
		return verifiedChain{}, err
	}
	if !out.OK {
		return verifiedChain{}, fmt.Errorf("audit verify printed ok=false: %s", r.Stdout)
	}
	for _, ch := range out.Chains {
		if ch.Dataplane == dp {
			return ch, nil
		}
	}
	return verifiedChain{}, fmt.Errorf("no chain of data plane %s yet", dp)
}

// auditUploadLag asks dp's /readyz once for audit_upload_lag: the local
// records the control plane has not acknowledged yet.
func auditUploadLag(dp *harness.Dataplane) (uint64, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dp.URL+"/readyz", nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	var st struct {
		Lag *uint64 `json:"audit_upload_lag"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return 0, fmt.Errorf("dataplane %s /readyz: status %d, body %q: %w", dp.Name, resp.StatusCode, body, err)
	}
	if st.Lag == nil {
		return 0, fmt.Errorf("dataplane %s /readyz: status %d, body %q: no audit_upload_lag", dp.Name, resp.StatusCode, body)
	}
	return *st.Lag, nil
}
