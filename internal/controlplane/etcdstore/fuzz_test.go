package etcdstore_test

import (
	"crypto/sha256"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore"
	etcdstorev1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/etcdstore/v1"
)

// FuzzDecodeEntry: whatever bytes a log key holds, decoding never panics,
// and what it accepts is an entry whose command is non-empty or whose
// chunks are described within the bounds a writer keeps to.
func FuzzDecodeEntry(f *testing.F) {
	sum := sha256.Sum256([]byte("x"))
	for _, e := range []*etcdstorev1.Entry{
		{Entry: &etcdstorev1.Entry_Command{Command: []byte{0x0a, 0x01, 0x78}}, NodeId: "n1"},
		{Entry: &etcdstorev1.Entry_CommandBlob{CommandBlob: &etcdstorev1.Blob{Id: "0123abcd", Chunks: 2, Size: 1 << 20, Sha256: sum[:]}}},
		{Entry: &etcdstorev1.Entry_Restore{Restore: &etcdstorev1.Blob{Id: "r", Chunks: 1, Size: 1, Sha256: sum[:]}}},
		{},
	} {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := etcdstore.DecodeEntry(data)
		if err != nil {
			return
		}
		if c := e.GetCommand(); c != nil {
			if len(c) == 0 {
				t.Fatal("accepted an empty command")
			}
			return
		}
		b := e.GetCommandBlob()
		if b == nil {
			b = e.GetRestore()
		}
		if b == nil || b.GetChunks() == 0 || b.GetChunks() > 1<<10 || len(b.GetSha256()) != 32 || b.GetId() == "" {
			t.Fatalf("accepted %v", e)
		}
	})
}
