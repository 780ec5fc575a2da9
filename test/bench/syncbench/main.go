// Command syncbench measures config distribution: with a fixed snapshot
// (1,000 agents, 200 tools, 200 policies) on a one-node control plane, on
// Raft and on etcd (one etcd member in-process, fsync on), the time from
// a write to the new version arriving at 1, 100 and 1,000 watchers
// (p50/p99, with the process's CPU time and memory), and a data plane's
// validate-and-swap time for that snapshot. The baseline is the same
// snapshot's proto decoding time, which any consumer must pay.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
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
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore/etcdtest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1/configsyncv1connect"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"google.golang.org/protobuf/proto"
)

const (
	agents   = 1000
	tools    = 200
	policies = 200
	rounds   = 20
)

func main() {
	out := flag.String("out", "", "also write the Markdown report to this file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*out); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		os.Exit(1) //nolint:gocritic // the profile is stopped above
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type env struct {
	url   string
	token string
	hc    *http.Client
}

func (e env) auth(r connect.AnyRequest) { r.Header().Set("Authorization", "Bearer "+e.token) }

func run(out string) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Config distribution benchmark\n\nSetup: %s, %d CPUs; one control-plane node (--dev, loopback, in-process watchers over HTTP/2 h2c, 100 streams per connection), on Raft and on etcd (one etcd member in-process, fsync on); snapshot of %d agents, %d tools, %d policies; %d writes per watcher count; a write is `gwctl freeze on|off` (a SetFreeze command), latency is from sending the write to each watcher receiving the (gzip-once) snapshot it produced.\n\n", host, runtime.NumCPU(), agents, tools, policies, rounds)
	fmt.Fprintf(&b, "| store | watchers | deliveries | p50 | p99 | max | CPU per write | RSS after | goal (1,000 ≤ 250 ms p99) |\n|---|---|---|---|---|---|---|---|---|\n")
	var snapshot []byte
	for _, store := range []string{server.StoreRaft, server.StoreEtcd} {
		snap, err := runStore(&b, store)
		if err != nil {
			return fmt.Errorf("%s: %w", store, err)
		}
		if snapshot == nil {
			snapshot = snap
		}
	}
	dec, comp := applyTimes(snapshot)
	fmt.Fprintf(&b, "\nData plane, same snapshot (%d KiB): decode only (baseline) p50 %s; validate-and-swap (`config.Compile`: decode, JSON Schemas, Cedar schema + every policy) p50 %s, p99 %s; ratio %.1f×.\n",
		len(snapshot)>>10, dec.p50.Round(time.Microsecond), comp.p50.Round(time.Microsecond), comp.p99.Round(time.Microsecond), float64(comp.p50)/float64(max(dec.p50, 1)))
	fmt.Print(b.String())
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

// runStore measures distribution with the control plane on store and
// adds its rows to b; it returns the last snapshot delivered.
func runStore(b *strings.Builder, store string) ([]byte, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "syncbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	kek := filepath.Join(dir, "kek")
	if err := seal.GenerateKeyFile(kek); err != nil {
		return nil, err
	}
	cfg := server.Config{NodeID: "n1", DataDir: filepath.Join(dir, "n1"), RaftAddr: freeAddr(), APIAddr: freeAddr(),
		KEKFile: kek, Bootstrap: true, Dev: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if store == server.StoreEtcd {
		etcd, err := etcdtest.NewWith(filepath.Join(dir, "etcd"), etcdtest.Options{Fsync: true})
		if err != nil {
			return nil, err
		}
		defer etcd.Stop()
		cfg.Store, cfg.Etcd = server.StoreEtcd, server.EtcdConfig{Endpoints: etcd.Endpoints, Prefix: "/bench"}
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminTokenFile))
	if err != nil {
		return nil, err
	}
	e := env{url: "http://" + cfg.APIAddr, token: strings.TrimSpace(string(tok)), hc: h2cClient()}
	fmt.Fprintf(os.Stderr, "%s: populating: 1,000 agents, 200 tools, 200 policies …\n", store)
	if err := populate(ctx, e); err != nil {
		return nil, err
	}
	creds := adminv1connect.NewDataplaneServiceClient(e.hc, e.url)
	r := connect.NewRequest(&adminv1.CreateJoinCredentialRequest{Name: "bench"})
	e.auth(r)
	cr, err := creds.CreateJoinCredential(ctx, r)
	if err != nil {
		return nil, err
	}
	cred, err := joincred.Parse(cr.Msg.GetCredential())
	if err != nil {
		return nil, err
	}
	var snapshot []byte
	for _, n := range []int{1, 100, 1000} {
		res, snap, err := deliver(ctx, e, cred, n)
		if err != nil {
			return nil, fmt.Errorf("%d watchers: %w", n, err)
		}
		snapshot = snap
		verdict := ""
		if n == 1000 {
			verdict = "FAIL"
			if res.p99 <= 250*time.Millisecond {
				verdict = "PASS"
			}
		}
		fmt.Fprintf(b, "| %s | %d | %d | %s | %s | %s | %s | %d MiB | %s |\n", store, n, res.count, res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.max.Round(time.Microsecond), res.cpuPerWrite.Round(time.Microsecond), res.rss>>20, verdict)
	}
	return snapshot, nil
}

func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

func populate(ctx context.Context, e env) error {
	up := adminv1connect.NewUpstreamServiceClient(e.hc, e.url)
	r := connect.NewRequest(&adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "up"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "http://127.0.0.1:9/mcp"}})
	e.auth(r)
	if _, err := up.CreateUpstream(ctx, r); err != nil {
		return err
	}
	toolsC := adminv1connect.NewToolServiceClient(e.hc, e.url)
	for i := range tools {
		def := fmt.Sprintf(`{"name":"tool-%d","description":"tool %d","inputSchema":{"type":"object","properties":{"amount":{"type":"integer"},"to":{"type":"string"}}}}`, i, i)
		r := connect.NewRequest(&adminv1.PinToolRequest{Upstream: "up", Tool: fmt.Sprintf("tool-%d", i), Definition: []byte(def), Class: configv1.ToolClass_TOOL_CLASS_MUTATING})
		e.auth(r)
		if _, err := toolsC.PinTool(ctx, r); err != nil {
			return fmt.Errorf("pin tool %d: %w", i, err)
		}
	}
	agentsC := adminv1connect.NewAgentServiceClient(e.hc, e.url)
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	sem := make(chan struct{}, 16)
	for i := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := connect.NewRequest(&adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: fmt.Sprintf("agent-%d", i)}, Team: "team-" + fmt.Sprint(i%10)}})
			e.auth(r)
			if _, err := agentsC.CreateAgent(ctx, r); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("create agent: %w", err)
	}
	var src strings.Builder
	for i := range policies {
		if i%20 == 0 {
			fmt.Fprintf(&src, "forbid(principal, action == Action::\"up__tool-%d\", resource) when { context.arguments has amount && context.arguments.amount > %d };\n", i%tools, 1000+i)
			continue
		}
		fmt.Fprintf(&src, "permit(principal == Agent::\"agent-%d\", action == Action::\"up__tool-%d\", resource);\n", i, i%tools)
	}
	pol := adminv1connect.NewPolicyServiceClient(e.hc, e.url)
	pr := connect.NewRequest(&adminv1.ApplyPolicySetRequest{Name: "bench", Source: src.String()})
	e.auth(pr)
	if _, err := pol.ApplyPolicySet(ctx, pr); err != nil {
		return fmt.Errorf("apply policies: %w", err)
	}
	return nil
}

type stats struct {
	count         int
	p50, p99, max time.Duration
	cpuPerWrite   time.Duration
	rss           uint64
}

func summarize(d []time.Duration) stats {
	slices.Sort(d)
	s := stats{count: len(d)}
	if len(d) == 0 {
		return s
	}
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	s.p50, s.p99, s.max = at(0.5), at(0.99), d[len(d)-1]
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			_, _ = fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

// deliver opens n watchers, then makes `rounds` writes and records, per
// write and watcher, the time until that watcher had the new version.
func deliver(ctx context.Context, e env, cred joincred.Credential, n int) (stats, []byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type arrival struct {
		version uint64
		at      time.Time
	}
	arrivals := make([]chan arrival, n)
	var last []byte
	var lastMu sync.Mutex
	clients := make([]configsyncv1connect.ConfigSyncServiceClient, (n+99)/100)
	for i := range clients {
		clients[i] = configsyncv1connect.NewConfigSyncServiceClient(h2cClient(), e.url)
	}
	ready := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range n {
		arrivals[i] = make(chan arrival, rounds+4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := connect.NewRequest(&configsyncv1.WatchRequest{Name: cred.Name})
			r.Header().Set("Authorization", "Bearer "+cred.Token)
			st, err := clients[i/100].Watch(ctx, r)
			if err != nil {
				return
			}
			defer st.Close()
			first := true
			var seq uint64
			for st.Receive() {
				// Writes are made one at a time and each waits for every
				// watcher, so the k-th snapshot after the first is write k's:
				// watchers need not decompress what they are sent (that is
				// the data plane's cost, measured separately below).
				z := st.Msg().GetSnapshotGzip()
				if z == nil {
					continue
				}
				now := time.Now()
				if first {
					first = false
					ready <- struct{}{}
					if i == 0 {
						zr, err := gzip.NewReader(bytes.NewReader(z))
						if err != nil {
							return
						}
						data, err := io.ReadAll(zr)
						if err != nil {
							return
						}
						lastMu.Lock()
						last = data
						lastMu.Unlock()
					}
					continue
				}
				seq++
				version := seq
				select {
				case arrivals[i] <- arrival{version, now}:
				default:
				}
			}
		}()
	}
	for range n {
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			return stats{}, nil, fmt.Errorf("watchers did not all receive the first snapshot")
		}
	}
	dp := adminv1connect.NewDataplaneServiceClient(e.hc, e.url)
	var lat []time.Duration
	cpu0 := cpuTime()
	for round := range rounds {
		r := connect.NewRequest(&adminv1.SetFreezeRequest{Frozen: round%2 == 0, Reason: "bench"})
		e.auth(r)
		sent := time.Now()
		if _, err := dp.SetFreeze(ctx, r); err != nil {
			return stats{}, nil, err
		}
		want := uint64(round + 1)
		for i := range n {
			for {
				select {
				case a := <-arrivals[i]:
					if a.version >= want {
						lat = append(lat, a.at.Sub(sent))
						goto next
					}
				case <-time.After(30 * time.Second):
					return stats{}, nil, fmt.Errorf("watcher %d never received version %d", i, want)
				}
			}
		next:
		}
	}
	s := summarize(lat)
	s.cpuPerWrite = (cpuTime() - cpu0) / rounds
	s.rss = rss()
	cancel()
	wg.Wait()
	lastMu.Lock()
	defer lastMu.Unlock()
	return s, last, nil
}

func applyTimes(snapshot []byte) (decode, compile stats) {
	var d, c []time.Duration
	for range 30 {
		t := time.Now()
		var s snapshotv1.Snapshot
		_ = proto.Unmarshal(snapshot, &s)
		d = append(d, time.Since(t))
		t = time.Now()
		if _, err := config.Compile(snapshot); err != nil {
			fmt.Fprintln(os.Stderr, "compile:", err)
			break
		}
		c = append(c, time.Since(t))
	}
	return summarize(d), summarize(c)
}
