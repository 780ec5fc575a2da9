package peer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dirSegments serves the files of a directory as sealed segments.
type dirSegments string

func (d dirSegments) OpenSealed(name string) (io.ReadCloser, int64, error) {
	f, err := os.Open(filepath.Join(string(d), name))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// TestFetchAuditSegment: a node streams a sealed segment by name to a
// caller with the node key, in chunks; a name that is not a segment's, a
// segment it does not hold and a caller without the key are refused.
func TestFetchAuditSegment(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef"), (3*auditCopyChunk)/16+5) // several chunks
	name := "00000000000000000003.seg"
	if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("no"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	srv := NewServer(nil, nil, key, false, slog.New(slog.DiscardHandler))
	srv.ServeAuditSegments(dirSegments(dir))
	mux := http.NewServeMux()
	mux.Handle(srv.Handler())
	hs := httptest.NewServer(mux)
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")

	tests := []struct {
		name, segment string
		key           []byte
		wantErr       string
	}{
		{name: "a held segment", segment: name, key: key},
		{name: "not a segment name", segment: "secret.txt", key: key, wantErr: "not an audit segment name"},
		{name: "a path", segment: "../00000000000000000003.seg", key: key, wantErr: "not an audit segment name"},
		{name: "a segment not held", segment: "00000000000000000009.seg", key: key, wantErr: "not_found"},
		{name: "without the node key", segment: name, key: []byte("wrong"), wantErr: "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bytes.Buffer
			err := NewClient(nil, tt.key).FetchAuditSegment(context.Background(), addr, tt.segment, &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.wantErr) {
					t.Fatalf("FetchAuditSegment = %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), body) {
				t.Fatalf("received %d bytes, want the segment's %d", got.Len(), len(body))
			}
		})
	}
}
