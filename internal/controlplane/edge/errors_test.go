package edge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
)

// failures are errors as the store, the peer client and the disk produce
// them: a missing WAL segment, a refused connection to a peer.
type failures struct {
	disk, dial     error
	peerAddr, path string
}

func realFailures(t *testing.T) failures {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raft", "wal", "00000000000000000001-0000000000000001.wal")
	_, disk := os.Open(path)
	if disk == nil {
		t.Fatal("opening a missing file succeeded")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerAddr := ln.Addr().String()
	ln.Close()
	_, dial := net.Dial("tcp", peerAddr)
	if dial == nil {
		t.Fatal("dialling a closed port succeeded")
	}
	return failures{disk: disk, dial: dial, peerAddr: peerAddr, path: path}
}

func TestErrorLeaksNothingInternal(t *testing.T) {
	f := realFailures(t)
	disk, dial, peerAddr, path := f.disk, f.dial, f.peerAddr, f.path
	peerErr := connect.NewError(connect.CodeUnavailable, fmt.Errorf(`Post "https://%s/portcullis.cluster.v1.PeerService/Apply": %w`, peerAddr, dial))
	tests := []struct {
		name string
		err  error
		code connect.Code
		// want is in the message; a refusal of the caller's own input
		// keeps its text.
		want string
	}{
		{name: "disk failure", err: fmt.Errorf("raft apply: %w", disk), code: connect.CodeUnavailable, want: "node's log has the details"},
		{name: "raft failure", err: fmt.Errorf("raft apply: %w", raft.ErrEnqueueTimeout), code: connect.CodeUnavailable, want: "retry"},
		{name: "raft shut down under a barrier", err: fmt.Errorf("raft barrier: %w", raft.ErrRaftShutdown), code: connect.CodeUnavailable, want: "retry"},
		{name: "leader unreachable", err: fmt.Errorf("forward to leader n2: %w", peerErr), code: connect.CodeUnavailable, want: "retry"},
		{name: "leader's own failure", err: fmt.Errorf("forward to leader n2: %w", connect.NewError(connect.CodeInternal, fmt.Errorf("raft apply: %w", disk))), code: connect.CodeUnavailable, want: "retry"},
		{name: "no leader while a peer is unreachable", err: fmt.Errorf("linearizable read: %w: %w", store.ErrNoLeader, peerErr), code: connect.CodeUnavailable, want: "no leader elected"},
		{name: "timed out after a peer failure", err: fmt.Errorf("%w (last error: forward to leader n2: %w)", context.DeadlineExceeded, peerErr), code: connect.CodeDeadlineExceeded, want: edge.HeaderRequestID},
		{name: "cancelled", err: fmt.Errorf("wait for index 42: %w", context.Canceled), code: connect.CodeCanceled, want: "cancelled"},
		{name: "shutting down", err: fmt.Errorf("raft apply: %w", store.ErrShutdown), code: connect.CodeUnavailable, want: "shutting down"},
		{name: "backup refused by the leader", err: fmt.Errorf("forward to leader n2 at %s: %w: the backup is unreadable: corrupt state snapshot: truncated after 3 records", peerAddr, store.ErrInvalid),
			code: connect.CodeFailedPrecondition, want: "invalid request: the backup is unreadable: corrupt state snapshot: truncated after 3 records"},
	}
	internal := []string{peerAddr, "127.0.0.1", path, "wal", "raft", "dial", "connection refused", "forward", "PeerService", "n2"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			err := edge.Error(context.Background(), log, tt.err)
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("%v is not a Connect error", err)
			}
			if ce.Code() != tt.code {
				t.Errorf("code %v, want %v", ce.Code(), tt.code)
			}
			if !strings.Contains(ce.Message(), tt.want) {
				t.Errorf("message %q does not say %q", ce.Message(), tt.want)
			}
			for _, s := range internal {
				if strings.Contains(ce.Message(), s) {
					t.Errorf("message %q shows %q", ce.Message(), s)
				}
			}
			if !strings.Contains(logs.String(), tt.err.Error()) && !strings.Contains(logs.String(), fmt.Sprintf("%q", tt.err.Error())) {
				t.Errorf("the log does not hold the detail %q:\n%s", tt.err, logs.String())
			}
		})
	}
	if err := edge.Error(context.Background(), slog.New(slog.DiscardHandler), nil); err != nil {
		t.Errorf("nil became %v", err)
	}
}

func TestInternal(t *testing.T) {
	f := realFailures(t)
	disk, path := f.disk, f.path
	var logs bytes.Buffer
	err := edge.Internal(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), "write the backup", disk)
	if connect.CodeOf(err) != connect.CodeInternal {
		t.Fatalf("code %v", connect.CodeOf(err))
	}
	var ce *connect.Error
	errors.As(err, &ce)
	if want := "this node could not write the backup; the node's log has the details"; ce.Message() != want {
		t.Errorf("message %q, want %q", ce.Message(), want)
	}
	if !strings.Contains(logs.String(), path) {
		t.Errorf("the log does not name %s:\n%s", path, logs.String())
	}
}
