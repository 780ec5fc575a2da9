package syncclient

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
)

// gunzip decompresses a snapshot, refusing one that would exceed limit
// bytes (a compressed payload must not be able to exhaust memory).
func gunzip(data []byte, limit int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompress snapshot: %w", err)
	}
	defer func() { _ = zr.Close() }()
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("decompress snapshot: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("decompressed snapshot exceeds %d bytes", limit)
	}
	return out, nil
}
