package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// TestClusterFailuresShowNoInternalDetail: when a follower cannot reach
// the leader (the API address the cluster records for it has nothing
// listening), its clients learn what happened and what to do, but not the
// leader's address, the dial error or how forwarding works; the node's log
// has those.
func TestClusterFailuresShowNoInternalDetail(t *testing.T) {
	c := newCluster(t)
	c.logs = &syncBuffer{}
	c.bootstrap("n1", "n2")
	leader, follower := c.leader(), c.follower()
	dead := cptest.FreeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.client(leader).cluster.AddNode(ctx, req(c.token, &adminv1.AddNodeRequest{
		NodeId: leader.cfg.NodeID, RaftAddr: leader.srv.Node().RaftAddr(), ApiAddr: dead,
	})); err != nil {
		t.Fatalf("record a dead API address for the leader: %v", err)
	}
	eventually(t, 20*time.Second, "the follower knows the leader by its dead address", func() error {
		if _, addr := follower.srv.Node().Leader(); addr != dead {
			return fmt.Errorf("leader address %q", addr)
		}
		return nil
	})

	hc := c.httpClient()
	post := func(t *testing.T, procedure string, m proto.Message, headers ...string) (code, message string) {
		t.Helper()
		body, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+follower.cfg.APIAddr+procedure, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/proto")
		r.Header.Set("Connect-Protocol-Version", "1")
		r.Header.Set("Authorization", "Bearer "+c.token)
		// The server gives up before the client does, so the client
		// reads the server's own answer.
		r.Header.Set("Connect-Timeout-Ms", "1500")
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Set(headers[i], headers[i+1])
		}
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("%s succeeded with the leader unreachable", procedure)
		}
		var e struct{ Code, Message string }
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%d %q: %v", resp.StatusCode, b, err)
		}
		return e.Code, e.Message
	}
	tests := []struct {
		name      string
		procedure string
		msg       proto.Message
		headers   []string
		code      string
		want      string
	}{
		{name: "write", procedure: adminv1connect.AgentServiceCreateAgentProcedure,
			msg:  &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "stranded"}}},
			code: "deadline_exceeded", want: "outcome is unknown; retry it"},
		{name: "linearizable read", procedure: adminv1connect.AgentServiceListAgentsProcedure, msg: &adminv1.ListAgentsRequest{},
			headers: []string{"Portcullis-Consistency", "linearizable"}, code: "unavailable", want: "retry shortly or on another node"},
		{name: "restore", procedure: adminv1connect.BackupServiceRestoreBackupProcedure, msg: &adminv1.RestoreBackupRequest{Data: []byte("not a backup")},
			code: "deadline_exceeded", want: "outcome is unknown; retry it"},
	}
	internal := []string{dead, "127.0.0.1", "dial", "tcp", "connection refused", "forward", "PeerService", "raft"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := post(t, tt.procedure, tt.msg, tt.headers...)
			t.Logf("%s: %s", code, msg)
			if code != tt.code || !strings.Contains(msg, tt.want) {
				t.Errorf("got %s %q, want %s and %q", code, msg, tt.code, tt.want)
			}
			for _, s := range internal {
				if strings.Contains(msg, s) {
					t.Errorf("the message shows %q", s)
				}
			}
		})
	}
	if !strings.Contains(c.logs.String(), dead) {
		t.Errorf("no node logged the failure to reach %s", dead)
	}
}
