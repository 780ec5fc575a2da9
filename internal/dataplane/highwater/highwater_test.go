package highwater_test

import (
	"errors"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/highwater"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

func v(cluster string, epoch, n uint64) highwater.Version {
	return highwater.Version{Cluster: cluster, Epoch: epoch, Number: n}
}

func TestFromStreamAndFromDisk(t *testing.T) {
	mark := v("c1", 2, 50)
	tests := []struct {
		name    string
		mark    highwater.Version
		offered highwater.Version
		stream  error // nil: accepted
		disk    error
	}{
		{name: "nothing applied yet", mark: highwater.Version{}, offered: v("c1", 1, 3)},
		{name: "nothing applied yet, any cluster", mark: highwater.Version{}, offered: v("c9", 7, 1)},
		{name: "the same version", mark: mark, offered: v("c1", 2, 50)},
		{name: "newer in the epoch", mark: mark, offered: v("c1", 2, 51)},
		{name: "older in the epoch", mark: mark, offered: v("c1", 2, 49), stream: highwater.ErrOlder, disk: highwater.ErrOlder},
		{name: "older epoch, higher number", mark: mark, offered: v("c1", 1, 900), stream: highwater.ErrOlder, disk: highwater.ErrOlder},
		{name: "newer epoch, lower number", mark: mark, offered: v("c1", 3, 4), disk: highwater.ErrNewEpochFromDisk},
		{name: "newer epoch, higher number", mark: mark, offered: v("c1", 3, 60), disk: highwater.ErrNewEpochFromDisk},
		{name: "another cluster", mark: mark, offered: v("c2", 2, 51), stream: highwater.ErrOtherCluster, disk: highwater.ErrOtherCluster},
		{name: "another cluster, newer epoch", mark: mark, offered: v("c2", 5, 1), stream: highwater.ErrOtherCluster, disk: highwater.ErrOtherCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				from  string
				check func(mark, offered highwater.Version) error
				want  error
			}{
				{"stream", highwater.FromStream, tt.stream},
				{"disk", highwater.FromDisk, tt.disk},
			} {
				err := c.check(tt.mark, tt.offered)
				switch {
				case c.want == nil && err != nil:
					t.Errorf("from the %s: %v, want accepted", c.from, err)
				case c.want != nil && !errors.Is(err, c.want):
					t.Errorf("from the %s: %v, want %v", c.from, err, c.want)
				case err != nil:
					t.Logf("from the %s: %v", c.from, err)
				}
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b highwater.Version
		want int
	}{
		{name: "same", a: v("c", 1, 5), b: v("c", 1, 5), want: 0},
		{name: "number", a: v("c", 1, 4), b: v("c", 1, 5), want: -1},
		{name: "epoch beats number", a: v("c", 2, 1), b: v("c", 1, 500), want: 1},
		{name: "epoch beats number, other way", a: v("c", 1, 500), b: v("c", 2, 1), want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Fatalf("Compare = %d, want %d", got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != -tt.want {
				t.Fatalf("reversed Compare = %d, want %d", got, -tt.want)
			}
		})
	}
}

func TestOfAndRecord(t *testing.T) {
	if got := highwater.Of(&snapshotv1.Snapshot{ClusterId: "c", Version: 7}); got != v("c", 1, 7) {
		t.Fatalf("a snapshot without an epoch: %v, want epoch 1", got)
	}
	if got := highwater.Of(&snapshotv1.Snapshot{ClusterId: "c", Version: 7, Epoch: 4}); got != v("c", 4, 7) {
		t.Fatalf("Of = %v", got)
	}
	if got := highwater.FromRecord(v("c", 4, 7).Record()); got != v("c", 4, 7) {
		t.Fatalf("FromRecord(Record()) = %v", got)
	}
	if !highwater.FromRecord(nil).IsZero() {
		t.Fatal("FromRecord(nil) is not zero")
	}
}
