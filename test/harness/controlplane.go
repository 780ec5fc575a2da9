package harness

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// RaftTimingArgs are the short Raft timeouts the tests run with, so that an
// election after a leader dies takes well under a second.
var RaftTimingArgs = []string{
	"--raft-heartbeat-timeout", "300ms",
	"--raft-election-timeout", "300ms",
	"--raft-leader-lease-timeout", "300ms",
}

// StartTimeout bounds how long a node may take to become ready.
const StartTimeout = 30 * time.Second

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now and
// that this process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		portMu.Lock()
		fresh := !portsUsed[port]
		portsUsed[port] = true
		portMu.Unlock()
		if fresh {
			return port
		}
	}
	t.Fatal("find a free port: every port the kernel offered was handed out before")
	return 0
}

// FreeAddr is "127.0.0.1:<FreePort>".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// GenKEK writes a new key-encryption key to file with "controlplane gen-kek".
func GenKEK(t testing.TB, file string) {
	t.Helper()
	genKEK(t, Bin(t, "controlplane"), file)
}

// genKEK runs "gen-kek" of the controlplane binary bin.
func genKEK(t testing.TB, bin, file string) {
	t.Helper()
	out, err := exec.Command(bin, "gen-kek", file).CombinedOutput()
	if err != nil {
		t.Fatalf("controlplane gen-kek %s: %v\n%s", file, err, out)
	}
}

// ControlPlaneOptions configure StartControlPlane.
type ControlPlaneOptions struct {
	NodeID  string // required
	DataDir string // default: <t.TempDir()>/<NodeID>
	KEKFile string // required (see GenKEK)
	// RaftAddr and APIAddr default to free ports on 127.0.0.1.
	RaftAddr, APIAddr string
	// Bootstrap starts a new cluster. Otherwise Join (an https:// API URL),
	// JoinToken and JoinCAFingerprint join one; with neither the node must
	// already have state in DataDir.
	Bootstrap         bool
	Join              string
	JoinToken         string
	JoinCAFingerprint string
	// Args are extra flags of the first start, after the harness's own.
	Args []string
	// StoreArgs are the store's flags, given at every start (a restart
	// too). Default: Raft (--raft-addr and RaftTimingArgs); see EtcdArgs
	// for a node on etcd.
	StoreArgs []string
	// BinDir holds the controlplane binary to run (default: the one Main
	// built), e.g. a build of another commit (BuildCommit).
	BinDir string
}

// ControlPlane is a controlplane node run by a test. Its process can be
// killed, stopped and restarted from its data directory; Log keeps the
// output of every run and is dumped with t.Log when the test fails.
type ControlPlane struct {
	NodeID   string
	DataDir  string
	KEKFile  string
	RaftAddr string
	APIAddr  string
	// URL is the API's base URL, https://<APIAddr>.
	URL string
	Log *LogBuffer

	t    testing.TB
	args []string // flags of the first start (bootstrap or join included)
	// storeArgs are the store's flags of every start (nil: Raft's).
	storeArgs []string
	mu        sync.Mutex
	d         *Daemon
	bin       string // the binary the current (or next) process runs
}

// StartControlPlane starts a node; it does not wait for it (see
// AwaitReady).
func StartControlPlane(t testing.TB, opts ControlPlaneOptions) *ControlPlane {
	t.Helper()
	if opts.NodeID == "" || opts.KEKFile == "" {
		t.Fatal("StartControlPlane: NodeID and KEKFile are required")
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(t.TempDir(), opts.NodeID)
	}
	if opts.RaftAddr == "" {
		opts.RaftAddr = FreeAddr(t)
	}
	if opts.APIAddr == "" {
		opts.APIAddr = FreeAddr(t)
	}
	cp := &ControlPlane{
		NodeID: opts.NodeID, DataDir: opts.DataDir, KEKFile: opts.KEKFile,
		RaftAddr: opts.RaftAddr, APIAddr: opts.APIAddr, URL: "https://" + opts.APIAddr,
		Log: NewLogBuffer(), t: t, bin: programIn(t, opts.BinDir, "controlplane"), storeArgs: opts.StoreArgs,
	}
	args := cp.baseArgs()
	switch {
	case opts.Bootstrap:
		args = append(args, "--bootstrap")
	case opts.Join != "":
		args = append(args, "--join", opts.Join, "--join-token", opts.JoinToken, "--join-ca-fingerprint", opts.JoinCAFingerprint)
	}
	cp.args = append(args, opts.Args...)
	// Registered before the daemon's own cleanup, so it runs after the
	// process is gone and the log is complete.
	t.Cleanup(func() {
		if strings.Contains(cp.Log.String(), raceReport) {
			t.Errorf("controlplane %s reported a data race (see its log)", cp.NodeID)
		}
		if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
			t.Logf("=== log of controlplane %s (%s) ===\n%s=== end of log of %s ===", cp.NodeID, cp.URL, cp.Log.String(), cp.NodeID)
		}
	})
	cp.start(cp.args)
	return cp
}

// baseArgs are the flags every run of the node gets; a restart gets only
// these (the state is in the data dir).
func (cp *ControlPlane) baseArgs() []string {
	args := []string{"--node-id", cp.NodeID, "--data-dir", cp.DataDir, "--kek-file", cp.KEKFile, "--api-addr", cp.APIAddr}
	if cp.storeArgs != nil {
		return append(args, cp.storeArgs...)
	}
	return append(append(args, "--raft-addr", cp.RaftAddr), RaftTimingArgs...)
}

func (cp *ControlPlane) start(args []string) {
	cp.t.Helper()
	d := StartDaemon(cp.t, "controlplane "+cp.NodeID, cp.Bin(), args, nil, cp.Log)
	cp.mu.Lock()
	cp.d = d
	cp.mu.Unlock()
}

// Bin is the controlplane binary the node runs (or runs at its next
// start).
func (cp *ControlPlane) Bin() string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.bin
}

// Daemon is the node's current process.
func (cp *ControlPlane) Daemon() *Daemon {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.d
}

// CAFile is the cluster CA the node keeps in its data dir.
func (cp *ControlPlane) CAFile() string { return filepath.Join(cp.DataDir, "tls", "ca.crt") }

// AdminTokenFile is where a bootstrapped node wrote the bootstrap admin
// token.
func (cp *ControlPlane) AdminTokenFile() string { return filepath.Join(cp.DataDir, "admin.token") }

// Running reports whether the node's process runs.
func (cp *ControlPlane) Running() bool { return !cp.Daemon().Exited() }

// Kill kills the node with SIGKILL (kill -9) and waits until it is gone.
func (cp *ControlPlane) Kill() {
	cp.t.Logf("kill -9 controlplane %s (pid %d)", cp.NodeID, cp.Daemon().Pid())
	cp.Daemon().Kill()
}

// Stop stops the node with SIGTERM and waits for it; it returns the exit
// error (nil for status 0).
func (cp *ControlPlane) Stop() error {
	return cp.Daemon().Stop(15 * time.Second)
}

// MustCleanShutdown stops the node with SIGTERM and fails the test unless
// it exits with status 0.
func (cp *ControlPlane) MustCleanShutdown(t testing.TB) {
	t.Helper()
	cp.Daemon().MustCleanShutdown(t)
}

// Restart starts the node again from its data dir, with only --node-id,
// --data-dir, --kek-file, --raft-addr and --api-addr (plus the Raft
// timings). A node that still runs is stopped first (SIGTERM). It does not
// wait for the new process to be ready (see AwaitReady).
func (cp *ControlPlane) Restart() {
	cp.t.Helper()
	if cp.Running() {
		if err := cp.Stop(); err != nil {
			cp.t.Logf("restart controlplane %s: stop: %v", cp.NodeID, err)
		}
	}
	cp.start(cp.baseArgs())
}

// RestartWith is Restart with extra flags for this run only (such as a
// changed egress policy); a later Restart drops them again.
func (cp *ControlPlane) RestartWith(args ...string) {
	cp.t.Helper()
	if cp.Running() {
		if err := cp.Stop(); err != nil {
			cp.t.Logf("restart controlplane %s: stop: %v", cp.NodeID, err)
		}
	}
	cp.start(append(cp.baseArgs(), args...))
}

// RestartFrom is Restart with the controlplane binary in binDir: how a
// rolling upgrade (or downgrade) replaces a node's binary while keeping
// its data dir and addresses. A node that still runs is stopped with
// SIGTERM first, and the test fails unless it exits cleanly.
func (cp *ControlPlane) RestartFrom(binDir string) {
	cp.t.Helper()
	if cp.Running() {
		if err := cp.Stop(); err != nil {
			cp.t.Fatalf("controlplane %s: stop for a restart from %s: %v", cp.NodeID, binDir, err)
		}
	}
	bin := programIn(cp.t, binDir, "controlplane")
	cp.mu.Lock()
	cp.bin = bin
	cp.mu.Unlock()
	cp.start(cp.baseArgs())
}

// AwaitReady waits until the node answers /readyz with 200 (it knows a
// leader); it fails the test at the deadline or when the process exits.
func (cp *ControlPlane) AwaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	d := cp.Daemon()
	err := awaitHTTP(cp.URL+"/readyz", cp.CAFile(), timeout, d.Done())
	if err != nil {
		t.Fatalf("controlplane %s not ready: %v", cp.NodeID, err)
	}
}

// AwaitResponding waits until GET url/healthz answers 200 over TLS trusting
// the CA in caFile (which may appear only while waiting).
func AwaitResponding(url, caFile string, timeout time.Duration) error {
	return awaitHTTP(url+"/healthz", caFile, timeout, nil)
}

// AwaitReady waits until GET url/readyz answers 200 (the node knows a
// leader) over TLS trusting the CA in caFile.
func AwaitReady(url, caFile string, timeout time.Duration) error {
	return awaitHTTP(url+"/readyz", caFile, timeout, nil)
}

func awaitHTTP(url, caFile string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last error
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		if last = getOK(url, caFile); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: no 200 within %s: %w", url, timeout, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("GET %s: the process exited (last error: %w)", url, last)
		case <-time.After(backoff):
		}
	}
}

// getOK makes one GET with a fresh, keep-alive-free client (so no idle
// connection goroutine outlives it).
func getOK(url, caFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s holds no certificate", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

var fingerprintRE = regexp.MustCompile(`cluster bootstrapped.*ca_fingerprint=(sha256:[0-9a-f]{64})`)

// AwaitCAFingerprint waits for the bootstrap log line of a bootstrapping
// node and returns the CA fingerprint it carries.
func (cp *ControlPlane) AwaitCAFingerprint(t testing.TB, timeout time.Duration) string {
	t.Helper()
	m, err := cp.Log.AwaitMatch(fingerprintRE, timeout, cp.Daemon().Done())
	if err != nil {
		t.Fatalf("controlplane %s: %v", cp.NodeID, err)
	}
	return m[1]
}
