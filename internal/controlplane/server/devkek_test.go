package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
)

// TestDevCreatesAKeyEncryptionKey: a --dev node that bootstraps without a
// key creates one in its data directory, says so, and uses it again on
// restart; production mode, and a --dev node joining a cluster, still
// require one.
func TestDevCreatesAKeyEncryptionKey(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	cfg := server.Config{
		NodeID: "n1", DataDir: dir, RaftAddr: cptest.FreeAddr(t), APIAddr: cptest.FreeAddr(t),
		Bootstrap: true, Dev: true, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Timing: raftstore.Timing{HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond},
	}
	start := func(cfg server.Config) (*server.Server, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return server.Start(ctx, cfg)
	}
	srv, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, server.DevKEKFile)
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v, mode %v; want one of mode 0600", file, err, info)
	}
	key, _ := os.ReadFile(file)
	if !strings.Contains(logs.String(), "no key-encryption key given, so one was created in the data directory") {
		t.Errorf("no log line says a key was created:\n%s", logs.String())
	}

	srv, err = start(cfg)
	if err != nil {
		t.Fatalf("restart on the created key: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(file); !bytes.Equal(again, key) {
		t.Error("the restart replaced the key")
	}
	if !strings.Contains(logs.String(), "using the key-encryption key in the data directory") {
		t.Errorf("the restart does not say which key it uses:\n%s", logs.String())
	}

	prod := cfg
	prod.DataDir, prod.Dev = t.TempDir(), false
	if _, err := start(prod); !errors.Is(err, seal.ErrNoKey) {
		t.Errorf("production mode without a key: %v, want %v", err, seal.ErrNoKey)
	}
	join := cfg
	join.DataDir, join.Bootstrap, join.Join, join.JoinToken = t.TempDir(), false, "http://"+cptest.FreeAddr(t), "token"
	if _, err := start(join); !errors.Is(err, seal.ErrNoKey) || !strings.Contains(err.Error(), "joining node needs the cluster's key") {
		t.Errorf("--dev join without a key: %v", err)
	}
}
