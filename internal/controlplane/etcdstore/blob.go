package etcdstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	etcdstorev1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/etcdstore/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Sizes of values in etcd. etcd refuses a request over 1.5 MiB by default
// (--max-request-bytes); a chunk, or an entry with its command inline,
// stays well below it.
const (
	maxRequest = 3 << 19 // etcd's default --max-request-bytes
	chunkSize  = 1 << 20
	maxInline  = 256 << 10
	// maxBlobChunks bounds a blob a node reads (a corrupt or hostile
	// manifest must not make it loop for ever): 1 GiB.
	maxBlobChunks = 1 << 10
)

// errMissing: a value the log refers to is no longer in etcd (the log
// was truncated past this node). The node resyncs from a snapshot.
var errMissing = errors.New("a log entry's value is no longer in etcd")

// writeBlob stores data in chunks under blob id and returns its
// description. Each chunk is one request; a retried chunk rewrites the
// same bytes.
func (n *Node) writeBlob(ctx context.Context, id string, data []byte) (*etcdstorev1.Blob, error) {
	sum := sha256.Sum256(data)
	b := &etcdstorev1.Blob{Id: id, Size: uint64(len(data)), Sha256: sum[:]}
	for i := 0; i == 0 || len(data) > 0; i++ {
		k := min(len(data), chunkSize)
		chunk := string(data[:k])
		data = data[k:]
		err := retry(ctx, n.log, "write a chunk", func(ctx context.Context) error {
			_, err := n.cli.Put(ctx, n.keys.chunk(id, i), chunk)
			return err
		})
		if err != nil {
			return nil, describe(err)
		}
		b.Chunks++
	}
	return b, nil
}

// readBlob reads blob b as of revision rev (0: the newest revision). A
// chunk that is gone is errMissing; one that does not add up to what b
// says means someone wrote under the prefix who should not have.
func (n *Node) readBlob(ctx context.Context, b *etcdstorev1.Blob, rev int64) ([]byte, error) {
	if err := checkBlob(b); err != nil {
		return nil, fmt.Errorf("blob %q: %w", b.GetId(), err)
	}
	var buf bytes.Buffer
	buf.Grow(int(b.GetSize()))
	for i := range int(b.GetChunks()) {
		var resp *clientv3.GetResponse
		err := retry(ctx, n.log, "read a chunk", func(ctx context.Context) error {
			var opts []clientv3.OpOption
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			var err error
			resp, err = n.cli.Get(ctx, n.keys.chunk(b.GetId(), i), opts...)
			if compacted(err) {
				return fmt.Errorf("%w: %w", errMissing, err)
			}
			return err
		})
		if errors.Is(err, errMissing) {
			return nil, err
		}
		if err != nil {
			return nil, describe(err)
		}
		if len(resp.Kvs) == 0 {
			return nil, fmt.Errorf("%w: chunk %d of %q", errMissing, i, b.GetId())
		}
		buf.Write(resp.Kvs[0].Value)
		if uint64(buf.Len()) > b.GetSize() {
			break
		}
	}
	sum := sha256.Sum256(buf.Bytes())
	if uint64(buf.Len()) != b.GetSize() || !bytes.Equal(sum[:], b.GetSha256()) {
		return nil, fmt.Errorf("blob %q: its chunks do not match its description (%d bytes read, %d expected): something else wrote under the prefix", b.GetId(), buf.Len(), b.GetSize())
	}
	return buf.Bytes(), nil
}
