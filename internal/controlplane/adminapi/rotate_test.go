package adminapi_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestRotateAgentKey(t *testing.T) {
	n := startNode(t)
	created, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "rot"}}}))
	if err != nil {
		t.Fatal(err)
	}
	oldID := created.Msg.GetAgent().GetApiKeys()[0].GetId()

	rot, err := n.agents.RotateAgentKey(ctx(t), req(n.admin, &adminv1.RotateAgentKeyRequest{Name: "rot", Overlap: durationpb.New(time.Hour)}))
	if err != nil {
		t.Fatal(err)
	}
	keys := rot.Msg.GetAgent().GetApiKeys()
	if len(keys) != 2 || keys[0].GetId() != oldID || keys[1].GetId() == oldID {
		t.Fatalf("keys after rotation = %v, want the old one then a new one", keys)
	}
	if exp := keys[0].GetExpireTime(); exp == nil || time.Until(exp.AsTime()) > time.Hour || time.Until(exp.AsTime()) < 50*time.Minute {
		t.Fatalf("old key expires %v, want in about an hour (the overlap)", exp)
	}
	if keys[1].GetExpireTime() != nil {
		t.Fatal("the new key got an expiry without --ttl")
	}
	if rot.Msg.GetApiKey() == "" || rot.Msg.GetApiKey() == created.Msg.GetApiKey() {
		t.Fatal("rotation did not return a new key")
	}
	for _, k := range keys {
		if len(k.GetSha256()) != 0 {
			t.Fatal("a key hash leaked through the API")
		}
	}

	// A second rotation during the overlap would leave three live keys.
	_, err = n.agents.RotateAgentKey(ctx(t), req(n.admin, &adminv1.RotateAgentKeyRequest{Name: "rot", Overlap: durationpb.New(time.Hour)}))
	wantCode(t, err, connect.CodeFailedPrecondition, "rotation is in progress")

	// --overlap 0s revokes the previous keys at once.
	now, err := n.agents.RotateAgentKey(ctx(t), req(n.admin, &adminv1.RotateAgentKeyRequest{Name: "rot", Overlap: durationpb.New(0)}))
	if err != nil {
		t.Fatal(err)
	}
	if got := now.Msg.GetAgent().GetApiKeys(); len(got) != 1 || got[0].GetId() == keys[1].GetId() {
		t.Fatalf("keys after an immediate rotation = %v, want only the newest", got)
	}

	// A retried rotation (same request id) returns the same key once.
	r1, err := n.agents.RotateAgentKey(ctx(t), req(n.admin, &adminv1.RotateAgentKeyRequest{Name: "rot", Overlap: durationpb.New(0)}, "Portcullis-Request-Id", "rotate-1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := n.agents.RotateAgentKey(ctx(t), req(n.admin, &adminv1.RotateAgentKeyRequest{Name: "rot", Overlap: durationpb.New(0)}, "Portcullis-Request-Id", "rotate-1"))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Msg.GetApiKey() != r2.Msg.GetApiKey() || len(r2.Msg.GetAgent().GetApiKeys()) != 1 {
		t.Fatalf("a retried rotation returned another key or added one: %d keys", len(r2.Msg.GetAgent().GetApiKeys()))
	}

	_, err = n.agents.RotateAgentKey(ctx(t), req(n.admin, &adminv1.RotateAgentKeyRequest{Name: "nobody"}))
	wantCode(t, err, connect.CodeNotFound)
}
