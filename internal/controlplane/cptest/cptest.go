// Package cptest starts real, in-process control-plane nodes for tests of
// other packages: a one-node cluster on loopback with short Raft timing,
// bootstrapped with a fresh key-encryption key, stopped when the test ends.
package cptest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
)

// Options shape a node. The zero value is a --dev (plaintext) node.
type Options struct {
	// TLS serves the API with the cluster CA instead of --dev plaintext.
	TLS bool
	// SyncHeartbeat is the config-sync heartbeat (default: the server's).
	SyncHeartbeat time.Duration
	// Logger receives the node's logs (default: discarded).
	Logger *slog.Logger
	// WebWrites lets the web view change state (--web-writes).
	WebWrites bool
}

// Node is a running one-node cluster.
type Node struct {
	Server *server.Server
	Config server.Config
	// URL is the API base URL (http:// or https://).
	URL string
	// AdminToken is the bootstrap admin token.
	AdminToken string
	// CAPEM is the cluster CA certificate (TLS nodes only).
	CAPEM []byte
	// HTTPClient trusts the node (HTTP/2 over TLS, or plain HTTP).
	HTTPClient *http.Client
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start bootstraps a node for t and stops it when t ends (after any client
// started later, as cleanups run last-in first-out).
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek")
	if err := seal.GenerateKeyFile(kek); err != nil {
		t.Fatal(err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := server.Config{
		NodeID:    "n1",
		DataDir:   filepath.Join(dir, "data"),
		RaftAddr:  FreeAddr(t),
		APIAddr:   FreeAddr(t),
		Bootstrap: true,
		Dev:       !o.TLS,
		KEKFile:   kek,
		Timing: raftstore.Timing{
			HeartbeatTimeout:   50 * time.Millisecond,
			ElectionTimeout:    50 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
		},
		SyncHeartbeat: o.SyncHeartbeat,
		WebWrites:     o.WebWrites,
		Logger:        logger,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	n := &Node{Server: srv, Config: cfg, URL: "http://" + srv.Addr()}
	tr := &http.Transport{}
	if o.TLS {
		n.URL = "https://" + srv.Addr()
		if n.CAPEM, err = os.ReadFile(filepath.Join(cfg.DataDir, "tls", server.CACertFile)); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(n.CAPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
		tr.ForceAttemptHTTP2 = true
	}
	n.HTTPClient = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			t.Errorf("close control plane: %v", err)
		}
	})
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminTokenFile))
	if err != nil {
		t.Fatalf("read bootstrap token: %v", err)
	}
	n.AdminToken = strings.TrimSpace(string(tok))
	return n
}
