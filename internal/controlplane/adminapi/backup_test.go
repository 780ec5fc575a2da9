package adminapi_test

import (
	"bytes"
	"testing"

	"connectrpc.com/connect"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protodelim"
)

// saveBackup returns the node's whole backup.
func (n *node) saveBackup(t *testing.T) []byte {
	t.Helper()
	s, err := n.backups.SaveBackup(ctx(t), req(n.admin, &adminv1.SaveBackupRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []byte
	for s.Receive() {
		out = append(out, s.Msg().GetChunk()...)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("save backup: %v", err)
	}
	return out
}

// cutBeforeAgents returns the backup up to the first agent record: a
// stream that lost its tail at a record boundary.
func cutBeforeAgents(t *testing.T, backup []byte) []byte {
	t.Helper()
	r := bytes.NewReader(backup)
	if err := protodelim.UnmarshalFrom(r, &fsmv1.SnapshotHeader{}); err != nil {
		t.Fatal(err)
	}
	for r.Len() > 0 {
		at := len(backup) - r.Len()
		rec := &fsmv1.SnapshotRecord{}
		if err := protodelim.UnmarshalFrom(r, rec); err != nil {
			t.Fatal(err)
		}
		if rec.GetResource().GetAgent() != nil {
			return backup[:at]
		}
	}
	t.Fatal("backup holds no agent")
	return nil
}

func TestRestoreBackupRefusesBadInput(t *testing.T) {
	n := startNode(t)
	if _, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "kept-bot"}}})); err != nil {
		t.Fatal(err)
	}
	backup := n.saveBackup(t)
	other := startNode(t).saveBackup(t)
	tests := []struct {
		name      string
		data      []byte
		code      connect.Code
		fragments []string
	}{
		{name: "empty", data: nil, code: connect.CodeInvalidArgument, fragments: []string{"data is required"}},
		{
			name: "garbage", data: []byte("definitely not a backup"), code: connect.CodeFailedPrecondition, fragments: []string{"corrupt state snapshot"},
		},
		{
			name: "from another cluster", data: other, code: connect.CodeFailedPrecondition, fragments: []string{"belongs to cluster"},
		},
		{
			name: "truncated at a record boundary", data: cutBeforeAgents(t, backup), code: connect.CodeFailedPrecondition, fragments: []string{"corrupt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.backups.RestoreBackup(ctx(t), req(n.admin, &adminv1.RestoreBackupRequest{Data: tt.data}))
			wantCode(t, err, tt.code, tt.fragments...)
			if _, err := n.agents.GetAgent(ctx(t), req(n.admin, &adminv1.GetAgentRequest{Name: "kept-bot"}, "Portcullis-Consistency", "linearizable")); err != nil {
				t.Fatalf("agent after a refused restore: %v", err)
			}
		})
	}

	t.Run("own backup", func(t *testing.T) {
		res, err := n.backups.RestoreBackup(ctx(t), req(n.admin, &adminv1.RestoreBackupRequest{Data: backup}))
		if err != nil {
			t.Fatalf("restore of the node's own backup: %v", err)
		}
		if res.Msg.GetConfigVersion() == 0 {
			t.Fatal("restore reported config version 0")
		}
		if _, err := n.agents.GetAgent(ctx(t), req(n.admin, &adminv1.GetAgentRequest{Name: "kept-bot"}, "Portcullis-Consistency", "linearizable")); err != nil {
			t.Fatalf("agent after restore: %v", err)
		}
	})
}

// TestRestoreBackupStartsNewEpoch restores backups taken in different
// epochs: each restore starts the epoch after both the cluster's and the
// backup's, so epochs never repeat or go back, and the config version still
// moves past every earlier one (for data planes that compare versions
// alone).
func TestRestoreBackupStartsNewEpoch(t *testing.T) {
	n := startNode(t)
	if _, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "kept-bot"}}})); err != nil {
		t.Fatal(err)
	}
	first := n.saveBackup(t) // epoch 1
	var last uint64
	restore := func(name string, backup []byte, wantEpoch uint64) []byte {
		t.Helper()
		res, err := n.backups.RestoreBackup(ctx(t), req(n.admin, &adminv1.RestoreBackupRequest{Data: backup}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: config version %d, epoch %d", name, res.Msg.GetConfigVersion(), res.Msg.GetEpoch())
		if got := res.Msg.GetEpoch(); got != wantEpoch {
			t.Fatalf("%s: epoch %d, want %d", name, got, wantEpoch)
		}
		if v := res.Msg.GetConfigVersion(); v <= last {
			t.Fatalf("%s: config version %d, not past the earlier %d", name, v, last)
		}
		last = res.Msg.GetConfigVersion()
		return n.saveBackup(t)
	}
	second := restore("restore of an epoch-1 backup", first, 2)
	restore("restore of the epoch-1 backup again", first, 3)
	restore("restore of an epoch-2 backup in epoch 3", second, 4)
	if _, err := n.agents.GetAgent(ctx(t), req(n.admin, &adminv1.GetAgentRequest{Name: "kept-bot"}, "Portcullis-Consistency", "linearizable")); err != nil {
		t.Fatalf("agent after the restores: %v", err)
	}
}
