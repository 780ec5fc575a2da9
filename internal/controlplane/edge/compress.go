package edge

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/inflate"
)

// gzipOption replaces Connect's gzip with one whose decompressor stops at
// max bytes of output and at inflate.DefaultMaxRatio times the compressed
// bytes read (past inflate.DefaultSlack). Connect bounds the output as well,
// but on overflow it drains the decompressor to the end to report the size:
// a bomb would still be inflated in full. Responses compress as before.
func gzipOption(max int) connect.HandlerOption {
	limits := inflate.Limits{MaxBytes: int64(max), MaxRatio: inflate.DefaultMaxRatio, Slack: inflate.DefaultSlack}
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return &decompressor{r: inflate.NewReader(limits), max: max} },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) })
}

// decompressor turns inflate's refusals into ResourceExhausted errors,
// which Connect passes to the client as they are.
type decompressor struct {
	r   *inflate.Reader
	max int
}

func (d *decompressor) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	switch {
	case errors.Is(err, inflate.ErrTooLarge):
		return n, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("the message is larger than %d bytes once decompressed", d.max))
	case errors.Is(err, inflate.ErrRatio):
		return n, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("the message decompresses to more than %d times its compressed size; send it uncompressed", inflate.DefaultMaxRatio))
	}
	return n, err
}

func (d *decompressor) Reset(src io.Reader) error { return d.r.Reset(src) }
func (d *decompressor) Close() error              { return d.r.Close() }
