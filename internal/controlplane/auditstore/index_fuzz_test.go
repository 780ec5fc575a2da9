package auditstore

import (
	"testing"
	"time"
)

// FuzzDecodeIndex: an index file read from disk never panics the decoder,
// and one it accepts survives another round trip unchanged.
func FuzzDecodeIndex(f *testing.F) {
	seg := &segment{id: 7, size: 1234, sum: make([]byte, 32), records: 3, minTime: time.Unix(1, 0).UTC(), maxTime: time.Unix(9, 0).UTC(),
		chains: map[string]*seqRange{"dp1": {min: 1, max: 3, head: make([]byte, 32), version: 4}}}
	good, err := encodeIndex(seg)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(indexMagic))
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := decodeIndex(b)
		if err != nil {
			return
		}
		again := &segment{id: x.ID, size: x.Size, sum: x.SHA256, records: x.Records, minTime: x.MinTime, maxTime: x.MaxTime, chains: map[string]*seqRange{}}
		for k, c := range x.Chains {
			again.chains[k] = &seqRange{min: c.First, max: c.Last, head: c.Head, version: c.Version}
		}
		b2, err := encodeIndex(again)
		if err != nil {
			t.Fatal(err)
		}
		y, err := decodeIndex(b2)
		if err != nil {
			t.Fatalf("an accepted index does not decode after a round trip: %v", err)
		}
		if y.ID != x.ID || y.Size != x.Size || len(y.Chains) != len(x.Chains) || y.Records != x.Records {
			t.Fatalf("round trip changed the index: %+v, %+v", x, y)
		}
	})
}
