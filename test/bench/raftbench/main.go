// Command raftbench measures committed admin writes per second and commit
// latency (p50/p99) through the real admin API of a 1-node and a 3-node
// control plane on loopback with TLS, on each store: embedded Raft, and an
// etcd cluster of as many members (in-process, the pinned etcd server,
// fsync on), next to this machine's fsync latency as the baseline (every
// commit needs at least one fsync on a quorum).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore/etcdtest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
)

func main() {
	out := flag.String("out", "", "also write the Markdown report to this file")
	dur := flag.Duration("duration", 5*time.Second, "measurement time per configuration")
	conc := flag.Int("concurrency", 16, "concurrent writers")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*out, *dur, *conc); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "raftbench:", err)
		os.Exit(1) //nolint:gocritic // the profile is stopped above
	}
}

type result struct {
	name          string
	ops           int
	errs          int64
	elapsed       time.Duration
	p50, p99, max time.Duration
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func summarize(name string, lat []time.Duration, errs int64, elapsed time.Duration) result {
	slices.Sort(lat)
	r := result{name: name, ops: len(lat), errs: errs, elapsed: elapsed}
	r.p50, r.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.max = lat[len(lat)-1]
	}
	return r
}

func run(out string, dur time.Duration, conc int) error {
	tmp, err := os.MkdirTemp("", "raftbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var results []result
	results = append(results, fsyncBaseline(tmp, 2000))
	for _, store := range []string{server.StoreRaft, server.StoreEtcd} {
		for _, n := range []int{1, 3} {
			r, err := benchCluster(filepath.Join(tmp, fmt.Sprint(store, n)), store, n, dur, conc)
			if err != nil {
				return fmt.Errorf("%d-node cluster on %s: %w", n, store, err)
			}
			results = append(results, r)
		}
	}
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Commit benchmark: Raft and etcd\n\n")
	fmt.Fprintf(&b, "Setup: %s, %d CPUs, loopback, TLS to the API, %d concurrent writers for %s per cluster; each write is an admin-API SetSecret (authenticated, sealed, replicated, applied). Raft: raft-wal log. etcd: as many etcd members as control-plane nodes, the pinned etcd server in-process, fsync on, plaintext on loopback; every node appends itself and the write returns once that node applied it from its watch. Baseline: 4 KiB write+fsync on the same disk.\n\n", host, numCPU(), conc, dur)
	fmt.Fprintf(&b, "| configuration | ops | errors | ops/s | p50 | p99 | max | p99 / fsync p99 |\n|---|---|---|---|---|---|---|---|\n")
	base := results[0].p99
	for _, r := range results {
		rate := float64(r.ops) / r.elapsed.Seconds()
		ratio := float64(r.p99) / float64(base)
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %s | %s | %s | %.1f× |\n", r.name, r.ops, r.errs, rate, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), ratio)
	}
	fmt.Print(b.String())
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

func numCPU() int { return runtime.NumCPU() }

// fsyncBaseline times n 4 KiB appends each followed by fsync.
func fsyncBaseline(dir string, n int) result {
	f, err := os.Create(filepath.Join(dir, "fsync"))
	if err != nil {
		return result{name: "fsync baseline (failed)"}
	}
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			break
		}
		if err := f.Sync(); err != nil {
			break
		}
		lat = append(lat, time.Since(t))
	}
	return summarize("fsync (baseline)", lat, 0, time.Since(start))
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func benchCluster(dir, store string, n int, dur time.Duration, conc int) (result, error) {
	ctx := context.Background()
	kek := filepath.Join(dir, "kek")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return result{}, err
	}
	if err := seal.GenerateKeyFile(kek); err != nil {
		return result{}, err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var onStore func(*server.Config)
	if store == server.StoreEtcd {
		etcd, err := etcdtest.NewWith(filepath.Join(dir, "etcd"), etcdtest.Options{Members: n, Fsync: true})
		if err != nil {
			return result{}, err
		}
		defer etcd.Stop()
		onStore = func(c *server.Config) {
			c.Store, c.Etcd = server.StoreEtcd, server.EtcdConfig{Endpoints: etcd.Endpoints, Prefix: "/bench"}
		}
	}
	var servers []*server.Server
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	first := server.Config{NodeID: "n1", DataDir: filepath.Join(dir, "n1"), RaftAddr: freeAddr(), APIAddr: freeAddr(), KEKFile: kek, Bootstrap: true, Logger: logger}
	if onStore != nil {
		onStore(&first)
	}
	s1, err := server.Start(ctx, first)
	if err != nil {
		return result{}, err
	}
	servers = append(servers, s1)
	tokB, err := os.ReadFile(filepath.Join(first.DataDir, server.AdminTokenFile))
	if err != nil {
		return result{}, err
	}
	token := strings.TrimSpace(string(tokB))
	ca, err := os.ReadFile(filepath.Join(first.DataDir, "tls", server.CACertFile))
	if err != nil {
		return result{}, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}}
	url := "https://" + first.APIAddr
	cl := adminv1connect.NewClusterServiceClient(hc, url)
	auth := func(r connect.AnyRequest) { r.Header().Set("Authorization", "Bearer "+token) }
	st := connect.NewRequest(&adminv1.GetClusterStatusRequest{})
	auth(st)
	status, err := cl.GetClusterStatus(ctx, st)
	if err != nil {
		return result{}, err
	}
	for i := 2; i <= n; i++ {
		cfg := server.Config{NodeID: fmt.Sprintf("n%d", i), DataDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), RaftAddr: freeAddr(), APIAddr: freeAddr(), KEKFile: kek,
			Join: url, JoinToken: token, JoinCAFingerprint: status.Msg.GetCaFingerprint(), Logger: logger}
		if onStore != nil {
			cfg.Join, cfg.JoinToken, cfg.JoinCAFingerprint = "", "", ""
			onStore(&cfg)
		}
		s, err := server.Start(ctx, cfg)
		if err != nil {
			return result{}, err
		}
		servers = append(servers, s)
	}
	secrets := adminv1connect.NewSecretServiceClient(hc, url)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs atomic.Int64
		seq  atomic.Int64
	)
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				i := seq.Add(1)
				r := connect.NewRequest(&adminv1.SetSecretRequest{Name: fmt.Sprintf("s-%d", i%512), Value: []byte(fmt.Sprintf("value-%d-%d", w, i)), Hosts: []string{"bench.invalid"}})
				auth(r)
				t := time.Now()
				if _, err := secrets.SetSecret(ctx, r); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first error:", err)
					}
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	name := fmt.Sprintf("Raft, %d node(s), writes via the leader", n)
	if store == server.StoreEtcd {
		name = fmt.Sprintf("etcd, %d node(s) on %d member(s), writes via n1", n, n)
	}
	r := summarize(name, lat, errs.Load(), time.Since(start))
	if r.ops == 0 {
		return r, errors.New("no write succeeded")
	}
	return r, nil
}
