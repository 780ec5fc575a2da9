package e2e

import (
	"context"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// cpRecord is one record of "gwctl audit query -o json".
type cpRecord struct {
	Dataplane string        `json:"dataplane"`
	Sequence  harness.Int64 `json:"sequence"`
	Agent     string        `json:"agent"`
	Upstream  string        `json:"upstream"`
	Tool      string        `json:"tool"`
	TargetOwn string        `json:"targetOwn"`
	Decision  string        `json:"decision"`
	Outcome   string        `json:"outcome"`
}

func queryAll(t *testing.T, env []string, args ...string) []cpRecord {
	t.Helper()
	var out struct {
		Records []cpRecord `json:"records"`
	}
	harness.GwctlJSON(t, env, &out, append([]string{"audit", "query", "--all", "--limit", "1000", "--timeout", "30s"}, args...)...)
	return out.Records
}

// TestAuditSurvivesDataplaneKill runs steady calls through a data plane,
// kill -9s it mid-load and restarts it; then every call that got a
// response has its record at the control plane, every local record is
// there exactly once, the chains verify, the compliance question is one
// CSV, an attestation verifies offline, and a record edited on the control
// plane's disk makes verify fail naming it (and attest refuse).
func TestAuditSurvivesDataplaneKill(t *testing.T) {
	g := startGateway(t, 1, "dp-audit")
	dp := g.dps[0]
	env := g.env()
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)

	// Steady load: four callers, the ops agent allowed, every fifth call
	// by the dev agent (refused by policy).
	const workers = 4
	var okCalls, denied atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := g.opsKey
				if i%5 == 4 {
					key = g.devKey
				}
				c, err := dp.CallTool(context.Background(), key, actionWeather, weatherArgs(fmt.Sprintf("city-%d-%d", w, i)))
				switch {
				case err != nil || c.HTTPStatus == 0:
				case key == g.opsKey && c.Err() == nil:
					okCalls.Add(1)
				case key == g.devKey && c.Reason != "":
					denied.Add(1)
				}
			}
		}()
	}
	harness.Await(t, 20*time.Second, "calls flowing", func() error {
		if okCalls.Load() < 50 {
			return fmt.Errorf("%d calls answered", okCalls.Load())
		}
		return nil
	})
	dp.Kill()
	stop()
	wg.Wait()
	t.Logf("before the kill: %d calls answered ok, %d refused", okCalls.Load(), denied.Load())

	dp.Restart()
	dp.AwaitServing(t, harness.StartTimeout)
	for i := range 20 {
		mustCall(t, dp, g.opsKey, actionWeather, weatherArgs(fmt.Sprintf("after-%d", i)))
		okCalls.Add(1)
	}

	// Every local record reaches the control plane exactly once.
	local, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	var cp []cpRecord
	harness.Await(t, 30*time.Second, "control plane holds every local record", func() error {
		cp = queryAll(t, env, "--dataplane", "dp-audit")
		if len(cp) < len(local) {
			return fmt.Errorf("%d of %d records uploaded", len(cp), len(local))
		}
		return nil
	})
	seqs := make([]int, 0, len(cp))
	for _, r := range cp {
		seqs = append(seqs, int(r.Sequence))
	}
	sort.Ints(seqs)
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("control plane sequences are not exactly 1..%d: position %d holds %d", len(seqs), i, s)
		}
	}
	if len(cp) != len(local) {
		t.Fatalf("control plane holds %d records, the data plane's log %d", len(cp), len(local))
	}
	var okRecords, denyRecords int64
	for _, r := range cp {
		switch {
		case r.Agent == "ops-agent" && r.Outcome == "ok":
			okRecords++
		case r.Agent == "dev-agent" && r.Decision == "deny":
			denyRecords++
		}
	}
	// A record is durable before its response is released; a call in
	// flight at the kill may have a record but no response.
	if okRecords < okCalls.Load() || okRecords > okCalls.Load()+workers {
		t.Fatalf("%d ok records for %d answered calls (at most %d in flight at the kill)", okRecords, okCalls.Load(), workers)
	}
	if denyRecords < denied.Load() || denyRecords > denied.Load()+workers {
		t.Fatalf("%d deny records for %d refused calls", denyRecords, denied.Load())
	}
	harness.MustGwctl(t, env, "audit", "verify", "--timeout", "30s")

	// The compliance question: every get_weather call by any agent whose
	// user is not on the allowlist, since a date, as one CSV. The tool is
	// named as agents (and Cedar, and gwctl access) name it, or as its
	// upstream does: both give the same rows.
	g.gwctl(t, "valuelist", "create", "weather-users", "--value", "alice")
	compliance := func(names ...string) [][]string {
		t.Helper()
		args := append([]string{"audit", "query"}, names...)
		r := harness.MustGwctl(t, env, append(args, "--user-not-in-list", "weather-users", "--from", since, "--limit", "100", "-o", "csv", "--timeout", "30s")...)
		rows, err := csv.NewReader(strings.NewReader(r.Stdout)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	rows := compliance("--tool", actionWeather)
	// Every call of this data plane was a get_weather call, recorded
	// under the agents' name with the upstream's beside it; its other
	// records are configuration records (the versions it applied).
	var weatherCalls int
	for _, r := range cp {
		if r.Tool == actionWeather {
			weatherCalls++
			if r.Upstream != "demo" || r.TargetOwn != "get_weather" {
				t.Fatalf("record %d names upstream %q, own name %q; want demo, get_weather", r.Sequence, r.Upstream, r.TargetOwn)
			}
		}
	}
	if len(rows)-1 != weatherCalls || weatherCalls == 0 || rows[0][0] != "time" {
		t.Fatalf("compliance CSV has %d data rows (header %v), want %d", len(rows)-1, rows[0], weatherCalls)
	}
	if byUpstream := compliance("--upstream", "demo", "--tool", "get_weather"); len(byUpstream) != len(rows) {
		t.Fatalf("by the upstream's name: %d rows, by the agents' name: %d", len(byUpstream), len(rows))
	}
	// A name no tool has is an error, not "no calls".
	for _, names := range [][]string{{"--tool", "get_weather"}, {"--tool", "demo__get_wether"}, {"--upstream", "dmeo"}} {
		bad := harness.Gwctl(t, env, append(append([]string{"audit", "query"}, names...), "--timeout", "30s")...)
		if bad.OK() || !strings.Contains(bad.Stderr, "no audit record names it") {
			t.Fatalf("audit query %v: exit %d, stderr %q; want an error naming how to list", names, bad.Code, bad.Stderr)
		}
	}

	// An attestation over the range verifies offline against the
	// published key, and not once altered.
	to := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	att := harness.MustGwctl(t, env, "audit", "attest", "--from", since, "--to", to, "--timeout", "30s")
	attFile := g.writeFile(t, "attestation.json", att.Stdout)
	key := harness.MustGwctl(t, env, "audit", "public-key")
	keyFile := g.writeFile(t, "attest.pub", key.Stdout)
	ok := harness.MustGwctl(t, nil, "audit", "verify-attestation", attFile, "--public-key", keyFile)
	if !strings.Contains(ok.Stdout, "attestation valid") || !strings.Contains(ok.Stdout, "dp-audit") {
		t.Fatalf("verify-attestation: %s", ok.Stdout)
	}
	harness.MustGwctl(t, env, "audit", "verify-attestation", attFile)
	forged := strings.Replace(att.Stdout, `"statement": "`, `"statement": "A`, 1)
	if bad := harness.Gwctl(t, nil, "audit", "verify-attestation", g.writeFile(t, "forged.json", forged), "--public-key", keyFile); bad.OK() {
		t.Fatal("an altered attestation verified")
	}

	// Edit one record on the control plane's disk, keeping its frame's
	// checksum right: only the hash chain can tell.
	seq := tamper(t, filepath.Join(g.c.Nodes[0].DataDir, "audit"), 10)
	bad := harness.Gwctl(t, env, "audit", "verify", "--timeout", "30s")
	want := fmt.Sprintf(`data plane "dp-audit" record %d`, seq)
	if bad.OK() || !strings.Contains(bad.Stderr, want) {
		t.Fatalf("audit verify after editing record %d: exit %d, stderr %q; want a failure naming %s", seq, bad.Code, bad.Stderr, want)
	}
	if r := harness.Gwctl(t, env, "audit", "attest", "--from", since, "--to", to, "--timeout", "30s"); r.OK() || !strings.Contains(r.Stderr, want) {
		t.Fatalf("attest over a tampered range: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// tamper rewrites the n-th data-plane record in the control plane's audit store with
// another agent name of the same length, fixing the frame's CRC, and
// returns its sequence.
func tamper(t *testing.T, dir string, n int) uint64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no audit segments in %s: %v", dir, err)
	}
	sort.Strings(segs)
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := 1; off+8 <= len(b); {
		size := int(binary.LittleEndian.Uint32(b[off:]))
		rec := b[off+8 : off+8+size]
		r := &auditv1.Record{}
		if err := proto.Unmarshal(rec, r); err != nil {
			t.Fatal(err)
		}
		// The control plane's own chain (admin writes) is interleaved:
		// count the data plane's records only.
		if r.GetDataplane() == "control-plane" {
			off += 8 + size
			continue
		}
		if i < n {
			i++
			off += 8 + size
			continue
		}
		r.Agent = strings.Repeat("x", len(r.Agent))
		nb, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil || len(nb) != size {
			t.Fatalf("re-encode: %d bytes, %v", len(nb), err)
		}
		copy(rec, nb)
		binary.LittleEndian.PutUint32(b[off+4:], crc32.Checksum(nb, crc32.MakeTable(crc32.Castagnoli)))
		if err := os.WriteFile(segs[0], b, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("edited record %d of data plane %s in %s", r.GetSequence(), r.GetDataplane(), segs[0])
		return r.GetSequence()
	}
	t.Fatalf("fewer than %d records in %s", n, segs[0])
	return 0
}
