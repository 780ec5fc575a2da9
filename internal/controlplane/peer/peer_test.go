package peer

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
)

// TestFromForwardTreatsACutOffCallAsALeaderChange: a forwarded call that
// the leader's death cut off (HTTP/2 reports it as canceled) is retried
// like a leader change, while the caller's own cancellation stays one.
func TestFromForwardTreatsACutOffCallAsALeaderChange(t *testing.T) {
	cut := connect.NewError(connect.CodeCanceled, errors.New(`Post "https://10.0.0.1:7440/PeerService/Apply": connection reset by peer`))
	if err := fromForward(context.Background(), cut); !errors.Is(err, store.ErrNoLeader) {
		t.Errorf("cut off with a live context: %v, want ErrNoLeader", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fromForward(ctx, cut); errors.Is(err, store.ErrNoLeader) {
		t.Errorf("the caller cancelled: %v, want no leader error", err)
	}
	notLeader := connect.NewError(connect.CodeFailedPrecondition, store.ErrNotLeader)
	if err := fromForward(context.Background(), notLeader); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("not leader: %v", err)
	}
	refused := connect.NewError(connect.CodeInvalidArgument, errors.New("bad"))
	if err := fromForward(context.Background(), refused); errors.Is(err, store.ErrNoLeader) {
		t.Errorf("a refusal became a leader change: %v", err)
	}
}

// TestFromConnectKeepsTheLeadersRefusal: a backup the leader refuses is
// ErrInvalid on the follower too, with the leader's message (written for
// the caller) and nothing of the forwarding around it.
func TestFromConnectKeepsTheLeadersRefusal(t *testing.T) {
	leader := toConnect(fmt.Errorf("%w: the backup belongs to cluster %q, not to this cluster %q", store.ErrInvalid, "c1", "c2"))
	err := fromConnect(leader)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("%v is not ErrInvalid", err)
	}
	if want := `invalid request: the backup belongs to cluster "c1", not to this cluster "c2"`; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	if err := fromConnect(connect.NewError(connect.CodeInternal, errors.New("raft apply: timed out"))); errors.Is(err, store.ErrInvalid) {
		t.Fatalf("an internal failure became ErrInvalid: %v", err)
	}
}
