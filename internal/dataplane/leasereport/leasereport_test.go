package leasereport_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/leasereport"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// TestLoop: the loop reports at once, then on the refresh the leader
// answers with, and soon after a kick; a nil request sends nothing, and a
// failed send is not applied.
func TestLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sends, applied atomic.Int64
	var skip, fail atomic.Bool
	kick := make(chan struct{}, 1)
	send := func(_ context.Context, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error) {
		sends.Add(1)
		if req.GetName() != "dp1" {
			t.Errorf("request of %q", req.GetName())
		}
		if fail.Load() {
			return nil, errors.New("control plane gone")
		}
		// A refresh far longer than the test: only kicks report again.
		return &configsyncv1.LeaseResponse{Refresh: durationpb.New(time.Hour)}, nil
	}
	request := func() *configsyncv1.LeaseRequest {
		if skip.Load() {
			return nil
		}
		return &configsyncv1.LeaseRequest{Name: "dp1"}
	}
	apply := func(*configsyncv1.LeaseResponse, time.Time) { applied.Add(1) }
	done := make(chan struct{})
	go func() {
		leasereport.Loop(ctx, kick, send, request, apply, time.Now)
		close(done)
	}()
	await := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: sends %d, applied %d", what, sends.Load(), applied.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	await("the first report", func() bool { return sends.Load() == 1 && applied.Load() == 1 })
	time.Sleep(100 * time.Millisecond) // the answer set an hour's refresh
	if sends.Load() != 1 {
		t.Fatalf("reported %d times before a kick, with an hour's refresh", sends.Load())
	}
	fail.Store(true)
	kick <- struct{}{}
	await("the kicked report", func() bool { return sends.Load() == 2 })
	if applied.Load() != 1 {
		t.Fatalf("a failed report was applied")
	}
	skip.Store(true)
	kick <- struct{}{}
	time.Sleep(100 * time.Millisecond)
	if sends.Load() != 2 {
		t.Fatalf("a nil request was sent")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not end with its context")
	}
}
