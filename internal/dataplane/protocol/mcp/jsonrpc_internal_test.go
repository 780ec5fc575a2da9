package mcp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadAll: whatever length a body declares, readAll reads what
// io.ReadAll reads, and a reader's error comes back with what was read.
func TestReadAll(t *testing.T) {
	for _, n := range []int{0, 1, 100, 511, 512, 513, 5000} {
		body := strings.Repeat("x", n)
		for _, declared := range []int64{-1, 0, int64(n), int64(n) - 1, int64(n) + 1, 1, MaxBodyBytes + 1} {
			got, err := readAll(iotest.OneByteReader(strings.NewReader(body)), declared)
			if err != nil || string(got) != body {
				t.Fatalf("n=%d declared=%d (one byte at a time): %d bytes, %v", n, declared, len(got), err)
			}
			if got, err = readAll(strings.NewReader(body), declared); err != nil || string(got) != body {
				t.Fatalf("n=%d declared=%d: %d bytes, %v", n, declared, len(got), err)
			}
		}
	}
	boom := errors.New("boom")
	got, err := readAll(iotest.DataErrReader(iotest.TimeoutReader(bytes.NewReader([]byte("abc")))), 3)
	if !errors.Is(err, iotest.ErrTimeout) || len(got) > 3 {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := readAll(iotest.ErrReader(boom), -1); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}
