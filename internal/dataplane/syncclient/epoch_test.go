package syncclient_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"google.golang.org/protobuf/proto"
)

// TestEpochsInWatchAndReports: the client tells the node the epoch of the
// version it serves when it opens a stream, and every report carries the
// epochs of the version it is about and of the one served, applied or
// rejected, so the node can tell a rejected older version of one epoch
// from the same number in another.
func TestEpochsInWatchAndReports(t *testing.T) {
	tests := []struct {
		name    string
		serving syncclient.Version // before the stream opens
		reject  error              // what the data plane says of version 7 of epoch 2
	}{
		{name: "applied", serving: syncclient.Version{Epoch: 1, Number: 40}},
		{name: "rejected as older", serving: syncclient.Version{Epoch: 3, Number: 2},
			reject: errors.New("snapshot version 7 (epoch 2) is older than version 2 (epoch 3), which this data plane already applied")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSync(t, 50*time.Millisecond)
			b, err := proto.Marshal(&snapshotv1.Snapshot{Version: 7, Epoch: 2, ClusterId: "fake"})
			if err != nil {
				t.Fatal(err)
			}
			f.snapshot = b
			a := &applier{serving: tt.serving}
			if tt.reject != nil {
				a.setReject(func(uint64) error { return tt.reject })
			}
			r := startClient(t, fakeConfig(f.serve(t), a, time.Second), 0)
			var rep *configsyncv1.ReportRequest
			waitFor(t, 10*time.Second, "a report about version 7", func() bool {
				for _, x := range f.Reports() {
					if x.GetVersion() == 7 {
						rep = x
						return true
					}
				}
				return false
			})
			r.stop(t)
			if st := f.Streams(); len(st) == 0 || st[0].version != tt.serving.Number || st[0].epoch != tt.serving.Epoch {
				t.Fatalf("the first Watch said %+v, want version %d epoch %d", st, tt.serving.Number, tt.serving.Epoch)
			}
			serving := syncclient.Version{Epoch: 2, Number: 7}
			if tt.reject != nil {
				serving = tt.serving
			}
			want := fmt.Sprintf("version 7 epoch 2 applied %t serving %d epoch %d", tt.reject == nil, serving.Number, serving.Epoch)
			got := fmt.Sprintf("version %d epoch %d applied %t serving %d epoch %d",
				rep.GetVersion(), rep.GetEpoch(), rep.GetApplied(), rep.GetServingVersion(), rep.GetServingEpoch())
			if got != want {
				t.Fatalf("report: %s, want %s", got, want)
			}
			if tt.reject != nil && rep.GetReason() != tt.reject.Error() {
				t.Fatalf("reason %q, want %q", rep.GetReason(), tt.reject.Error())
			}
		})
	}
}
